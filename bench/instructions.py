"""Instructions per push request, counted by valgrind's callgrind in one process: the same on a
busy machine as on a quiet one, so two versions of the gateway compare in runs of their own.

    apt-get install -y valgrind
    .venv/bin/python bench/instructions.py [--repo PATH] [--requests 100]

For each scenario (small or typical push; a new client each, or the same body repeated) it
runs Flask's test client twice under callgrind, with no measured requests and with --requests
of them, after the same warm-up, and prints the difference divided by --requests. --repo
measures another checkout (a git worktree) with this script. SQLite, synchronous=NORMAL:
callgrind counts instructions, not time spent waiting for the disk.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCENARIOS = [(kind, mode) for kind in ("small", "typical") for mode in ("new", "repeated")]
WARM_UP = 20


def run_requests(repo, kind, mode, requests):
    """The measured program: a gateway in this process, warmed up, then the requests."""
    sys.path[:0] = [str(Path(repo) / "bench"), str(repo)]
    import logging

    from in_process import PUSH_PATH, gateway, new_client_bodies
    from payloads import main as write_payloads

    logging.disable(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="periskop-pushgateway-instructions-"))
    write_payloads(folder / "payloads")
    client, _parts = gateway(folder, "NORMAL")
    body = (folder / "payloads" / f"{kind}_0.json").read_bytes()
    bodies = new_client_bodies(body, WARM_UP + requests)
    # The same warm-up either way: statements compiled, occurrences seen, the body remembered.
    for warm_up in bodies[:WARM_UP]:
        client.post(PUSH_PATH, data=warm_up)
    for _ in range(2):  # a worker keeps what a body loaded to from its second push on
        client.post(PUSH_PATH, data=body)
    for fresh in bodies[WARM_UP:]:
        client.post(PUSH_PATH, data=body if mode == "repeated" else fresh)


def instructions(repo, kind, mode, requests):
    with tempfile.TemporaryDirectory() as folder:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out"]
        command += [sys.executable, __file__, "--run", repo, kind, mode, str(requests)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", output).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(BENCH.parent))
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        repo, kind, mode, requests = args.run
        run_requests(repo, kind, mode, int(requests))
        return
    print(f"instructions per request, {args.repo}")
    for kind, mode in SCENARIOS:
        base = instructions(args.repo, kind, mode, 0)
        measured = instructions(args.repo, kind, mode, args.requests)
        print(f"  {kind} push, {mode}: {(measured - base) / args.requests / 1e6:.2f} M", flush=True)


if __name__ == "__main__":
    main()
