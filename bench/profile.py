"""Where a gunicorn worker's time goes under load: py-spy samples both workers of the gateway
(SQLite, the default settings) while wrk drives one scenario of bench/run.py.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile.py ["push small, repeated"] [--seconds 10]

Prints, for the functions most often sampled, the share of samples in which each is on the
stack (inclusive) and at its top (self), leaving out gunicorn's start-up, which is on every
stack. Sampling slows the workers a little; the shares, not the request rate, are what to read.
"""

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from run import BENCH, SCENARIOS, Server, wrk

PY_SPY = Path(sys.executable).with_name("py-spy")
SAMPLES_PER_SECOND = 200


def sample(pid, seconds, output):
    # --function: one entry per function, not one per line of it.
    command = [str(PY_SPY), "record", "--function", "--format", "raw", "--output", str(output)]
    command += ["--rate", str(SAMPLES_PER_SECOND), "--duration", str(seconds), "--pid", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shares(stack_files):
    """(inclusive, self) samples per function, and the number of samples, from py-spy's raw
    output: one line per distinct stack, its frames joined by ';', then its count."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for path in stack_files:
        for line in path.read_text().splitlines():
            stack, count = line.rsplit(" ", 1)
            frames = stack.split(";")
            if _answerer_waiting(frames):
                continue
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
    return inclusive, own, total


def _answerer_waiting(frames):
    """A worker's answerer thread (durable_worker.py) asleep until an answer is kept too long:
    py-spy samples it as active, but it uses no CPU."""
    return frames[-1].startswith("Condition.wait ") and any(
        frame.startswith("HeldAnswers._run ") for frame in frames
    )


def main():
    names = [scenario.name for scenario in SCENARIOS if scenario.payloads]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default=names[0], choices=names)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if not PY_SPY.exists() or not shutil.which("wrk"):
        sys.exit("needs py-spy (.venv/bin/pip install py-spy) and wrk (apt-get install wrk)")
    scenario = next(scenario for scenario in SCENARIOS if scenario.name == args.scenario)

    folder = Path(tempfile.mkdtemp(prefix="periskop-pushgateway-profile-"))
    payloads = folder / "payloads"
    subprocess.run([sys.executable, str(BENCH / "payloads.py"), str(payloads)], check=True)
    env = {"PERISKOP_PUSHGATEWAY_DATABASE_URL": f"sqlite:///{folder}/gateway.db"}
    server = Server("gateway", folder, env=env)
    try:
        result = {}
        # wrk runs a second longer on each side, so that only the steady load is sampled.
        load = threading.Thread(
            target=lambda: result.update(
                wrk(server, scenario, payloads, args.seconds + 2, args.connections)
            )
        )
        load.start()
        time.sleep(1)
        outputs = {pid: folder / f"worker-{pid}.txt" for pid in server.worker_pids()}
        samplers = [sample(pid, args.seconds, output) for pid, output in outputs.items()]
        failed = [sampler.args for sampler in samplers if sampler.wait() != 0]
        load.join()
        if failed:
            sys.exit(f"py-spy failed (it needs ptrace permission): {failed[0]}")
        inclusive, own, total = shares(outputs.values())
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.scenario}: {result['req/s']}/s under py-spy; {total} samples of 2 workers")
    for title, counts in (("on the stack", inclusive), ("at the top", own)):
        print(f"\n{title}:")
        # Frames on (nearly) every stack are gunicorn's start-up: left out.
        shown = [(frame, count) for frame, count in counts.most_common() if count < 0.99 * total]
        for frame, count in shown[: args.top]:
            print(f"{count / total * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
