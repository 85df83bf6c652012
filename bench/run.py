"""Benchmark: the gateway under gunicorn (gunicorn.conf.py, 2 workers) on a temp database,
driven by wrk on this machine, against a floor app under the same gunicorn settings.

    [BENCH_GO_GATEWAY=path/to/periskop-pushgateway-go] \
    .venv/bin/python bench/run.py [--seconds 10] [--connections 16] [--no-postgresql]
        [--scenario TEXT] [--memory-pushes N]

Prints one row per scenario: requests/s, p50/p99 latency, and the ratio to the floor's
requests/s in the same run, then worker memory (RSS) after the scrape and along 100,000 pushes.
Needs wrk (Debian package `wrk`). Compare figures within one run only: the load generator and
the servers share the machine's cores.

When BENCH_GO_GATEWAY names the binary of the original Go gateway (see docs/performance.md), it runs
every scenario too, as one more column; the gateway's cells then also give their ratio to its
requests/s, and the memory report adds its process's RSS. It keeps everything in memory and
counts a re-pushed state again: compare speed only. Without the variable, no such column.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MEMORY_STEPS = 4
WRK_THREADS = 2
# wrk's default of 2s would cut off the Go original's slowest scrapes (it serializes its whole
# state for each) and count them as socket errors rather than time them.
WRK_TIMEOUT = "30s"


@dataclass
class Scenario:
    name: str
    script: str
    payloads: str = ""  # glob of payload files, for pushes
    fresh: bool = False  # a new target_uuid in every push
    gzip: bool = False  # the scrape sends Accept-Encoding: gzip, as the Periskop server does
    path: str = ""  # GET this page instead of the export (the Go original has no pages)


SCENARIOS = [
    Scenario("push small, repeated", "push.lua", "small_*.json"),
    Scenario("push small, new client each", "push.lua", "small_*.json", fresh=True),
    Scenario("push typical, repeated", "push.lua", "typical_*.json"),
    Scenario("push typical, new client each", "push.lua", "typical_*.json", fresh=True),
    Scenario("scrape 1,000 keys x 10", "get.lua"),
    # The floor and the Go original answer it plain: their cells are their plain scrape.
    Scenario("scrape 1,000 keys x 10, gzip", "get.lua", gzip=True),
    # The page a person opens for that group: its first 100 keys by last seen.
    Scenario("group page, 1,000 keys", "get.lua", path="/-/keys"),
]
# Pushes go to a group of their own, so the scrape reads exactly the 1,000 keys filled in.
PUSH_PATH = "/services/bench/errors"
SCRAPE_PATH = "/-/errors"
GO = "Go original"


class Server:
    """gunicorn -c gunicorn.conf.py --workers 2, on a loopback port, serving one app."""

    push_path = PUSH_PATH
    scrape_path = SCRAPE_PATH

    def __init__(self, name, folder, app=None, env=None):
        self.name = name
        self.folder = folder / name
        self.folder.mkdir()
        with socket_on_free_port() as port:
            self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        metrics = self.folder / "metrics"
        metrics.mkdir()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(REPO / "gunicorn.conf.py"),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        if app:
            command += ["--pythonpath", str(BENCH), app]
        self.log = open(self.folder / "gunicorn.log", "ab")  # noqa: SIM115 - open while it runs
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), **(env or {})},
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        wait_until_up(self, self.folder / "gunicorn.log")

    def worker_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def worker_rss_mib(self):
        return sorted(rss_mib(pid) for pid in self.worker_pids())

    rss_mib = worker_rss_mib

    def pss_mib(self):
        """Proportional set size of the master and its workers together: pages the workers
        share with the master since the fork count once."""
        return sum(pss_mib(pid) for pid in [self.process.pid, *self.worker_pids()])

    def stop(self):
        stop(self.process, self.log)


class GoServer:
    """The original Go gateway: one process, everything in memory, from the binary that
    BENCH_GO_GATEWAY names, on a free port. It serves POST /errors and GET /-/errors only (no
    groups), so its pushes and its scrape share one set of keys: `restart` empties it."""

    push_path = "/errors"
    scrape_path = SCRAPE_PATH

    def __init__(self, binary, folder):
        self.binary = binary
        self.folder = folder / "go"
        self.folder.mkdir()
        self.start()

    def start(self):
        with socket_on_free_port() as port:
            self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.folder / "go.log", "ab")  # noqa: SIM115 - open while it runs
        self.process = subprocess.Popen(
            [self.binary, "-port", str(self.port)],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        wait_until_up(self, self.folder / "go.log")

    def restart(self):
        self.stop()
        self.start()

    def rss_mib(self):
        return [rss_mib(self.process.pid)]

    def pss_mib(self):
        return pss_mib(self.process.pid)

    def stop(self):
        stop(self.process, self.log)


def stop(process, log):
    """SIGTERM, then SIGKILL to the whole session after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log.close()


def rss_mib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def pss_mib(pid):
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1)) / 1024


def wait_until_up(server, log):
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(server.url + "/-/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or server.process.poll() is not None:
            server.stop()
            raise RuntimeError(f"{server.url} did not start; see {log}")
        time.sleep(0.1)


class socket_on_free_port:
    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def wrk(server, scenario, payloads, seconds, connections, max_requests=None):
    """Run wrk once against `server`, on its push or scrape path; returns its RESULT fields."""
    env = {
        **os.environ,
        "PUSH_PATH": server.push_path,
        "GET_PATH": scenario.path or server.scrape_path,
        "FRESH": "1" if scenario.fresh else "0",
        "ACCEPT_ENCODING": "gzip" if scenario.gzip else "",
    }
    if max_requests:
        env["MAX_REQUESTS"] = str(max_requests)
    files = sorted(str(f) for f in payloads.glob(scenario.payloads)) if scenario.payloads else []
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", WRK_TIMEOUT]
    command += ["-s", str(BENCH / scenario.script), server.url, "--", *files]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return dict(field.split("=", 1) for field in line.split()[1:])


def cell(result, floor=None, go=None):
    text = f"{result['req/s']}/s, {result['p50']} / {result['p99']}"
    if floor:
        text += f", **{ratio(result, floor)}**"
    if go:
        text += f", {ratio(result, go)} of Go"
    failures = int(result["non2xx"]) + int(result["socket_errors"])
    if failures:
        text += f" ({result['non2xx']} non-2xx, {result['socket_errors']} socket errors)"
    return text


def ratio(result, to):
    return f"{int(result['req/s']) / int(to['req/s']):.2f}" if int(to["req/s"]) else "n/a"


def fill(url, payloads):
    for path in sorted(payloads.glob("fill_*.json")):
        response = requests.post(url + "/errors", data=path.read_bytes(), timeout=60)
        response.raise_for_status()
    return len(requests.get(url + "/-/errors", timeout=60).content)


def postgresql_schema(url):
    """A fresh schema on the PostgreSQL server, or None (and why) when it cannot be reached."""
    try:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        return schema, None
    except Exception as error:  # noqa: BLE001 - any failure means: no PostgreSQL column
        return None, str(error).splitlines()[0]


def drop_postgresql_schema(url, schema):
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def measure_memory(server, payloads, connections, pushes, first_seconds=5):
    """RSS now, then along `pushes` pushes from a new client each.
    (wrk runs for a duration, not a number of requests: each step is timed from the rate
    measured so far, and the pushes actually made are reported.)"""
    new_clients = Scenario("memory", "push.lua", "small_*.json", fresh=True)
    steps = [("after every scenario", memory_text(server))]
    per_step = pushes / MEMORY_STEPS
    pushed, seconds_spent, seconds = 0, 0.0, first_seconds
    while pushed < pushes:
        result = wrk(server, new_clients, payloads, seconds, connections)
        pushed += int(result["requests"])
        seconds_spent += seconds
        steps.append((f"after {pushed:,} pushes", memory_text(server)))
        rate = pushed / seconds_spent
        seconds = max(1, round(min(per_step, pushes - pushed) / rate))
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per scenario and server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--postgresql", default=POSTGRESQL_URL, help="server for that column")
    parser.add_argument("--no-postgresql", action="store_true")
    parser.add_argument("--memory-pushes", type=int, default=100_000, help="0: none")
    parser.add_argument(
        "--scenario",
        action="append",
        help="run only the scenarios whose name holds this text (repeatable)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    go_binary = os.environ.get("BENCH_GO_GATEWAY")
    if go_binary and not (os.path.isfile(go_binary) and os.access(go_binary, os.X_OK)):
        sys.exit(f"BENCH_GO_GATEWAY={go_binary} is not an executable file")

    folder = Path(tempfile.mkdtemp(prefix="periskop-pushgateway-bench-"))
    payloads = folder / "payloads"
    subprocess.run([sys.executable, str(BENCH / "payloads.py"), str(payloads)], check=True)

    def sqlite(synchronous):
        return {
            "PERISKOP_PUSHGATEWAY_DATABASE_URL": f"sqlite:///{folder}/{synchronous}.db",
            "PERISKOP_PUSHGATEWAY_SQLITE_SYNCHRONOUS": synchronous,
            # The memory report reads the database's size from /-/status.
            "PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true",
        }

    schema, why_not = (
        (None, "--no-postgresql") if args.no_postgresql else postgresql_schema(args.postgresql)
    )
    servers = {}
    try:
        servers["SQLite (FULL)"] = Server("sqlite-full", folder, env=sqlite("FULL"))
        servers["SQLite (NORMAL)"] = Server("sqlite-normal", folder, env=sqlite("NORMAL"))
        if schema:
            pg_url = f"{args.postgresql}?options=-csearch_path%3D{schema}"
            servers["PostgreSQL"] = Server(
                "postgresql", folder, env={"PERISKOP_PUSHGATEWAY_DATABASE_URL": pg_url}
            )
        if go_binary:
            servers[GO] = GoServer(go_binary, folder)
        export_bytes = {name: fill(server.url, payloads) for name, server in servers.items()}
        page_bytes = len(requests.get(servers["SQLite (FULL)"].url + "/-/keys", timeout=60).content)
        floor = Server(
            "floor",
            folder,
            app="floor:app",
            env={
                "FLOOR_SCRAPE_BYTES": str(export_bytes["SQLite (FULL)"]),
                "FLOOR_PAGE_BYTES": str(page_bytes),
            },
        )
        servers = {"floor": floor, **servers}

        print(
            f"wrk -t{WRK_THREADS} -c{args.connections} -d{args.seconds}s --timeout {WRK_TIMEOUT}; "
            "gunicorn 2 workers; "
            f"export {export_bytes['SQLite (FULL)']:,} bytes, group page {page_bytes:,}; "
            f"PostgreSQL: {'yes' if schema else why_not}"
        )
        if go_binary:
            print(
                f"{GO}: {go_binary}, one process, POST {GoServer.push_path} and "
                f"GET {GoServer.scrape_path} (no groups; export {export_bytes[GO]:,} bytes). "
                "It keeps everything in memory and counts a re-pushed state again: compare "
                "speed only. It is restarted and filled with the same 1,000 keys before the "
                "scrape, which otherwise would read its pushed keys too."
            )
        print(
            "cells: requests/s, p50 / p99 latency, ratio to the floor's requests/s"
            + ("; the gateway's then its ratio to the Go original's (of Go)" if go_binary else "")
        )
        print("| scenario | " + " | ".join(servers) + " |")
        print("|---" * (len(servers) + 1) + "|")
        scenarios = [
            scenario
            for scenario in SCENARIOS
            if not args.scenario or any(text in scenario.name for text in args.scenario)
        ]
        # Memory is read right after the 1,000-key scrapes too: the pages, served next, add
        # what each worker builds on first use.
        after_scrapes = None
        for scenario in scenarios:
            results = {}
            for name, server in servers.items():
                if name == "SQLite (NORMAL)" and not scenario.fresh:
                    continue  # synchronous matters only where pushes write
                if name == GO and scenario.path:
                    continue  # it has no pages
                if name == GO and scenario.script == "get.lua":
                    server.restart()
                    fill(server.url, payloads)
                results[name] = wrk(server, scenario, payloads, args.seconds, args.connections)
            floor_result = results["floor"]
            cells = [
                cell(
                    results[name],
                    None if name == "floor" else floor_result,
                    None if name in ("floor", GO) else results.get(GO),
                )
                if name in results
                else ("same as FULL" if name == "SQLite (NORMAL)" else "n/a")
                for name in servers
            ]
            print(f"| {scenario.name} | " + " | ".join(cells) + " |", flush=True)
            if scenario.script == "get.lua" and not scenario.path:
                after_scrapes = memory_text(servers["SQLite (FULL)"])

        print(
            "\nmemory (MiB: each worker's RSS; PSS of master and workers together), SQLite (FULL),"
        )
        print("pushes from a new client each:")
        print(f"  floor after the scrape: {memory_text(floor)}")
        if after_scrapes:
            print(f"  after the scrapes: {after_scrapes}")
        for when, memory in measure_memory(
            servers["SQLite (FULL)"], payloads, args.connections, args.memory_pushes
        ):
            print(f"  {when}: {memory}", flush=True)
        status = requests.get(servers["SQLite (FULL)"].url + "/-/status", timeout=30).json()
        print(f"  database size then: {status['database']['size_bytes'] / 2**20:.1f} MiB")
        if go_binary:
            print(f"\n{GO}'s process (MiB), pushes from a new client each:")
            # It takes pushes an order of magnitude faster: a shorter first step.
            for when, memory in measure_memory(
                servers[GO], payloads, args.connections, args.memory_pushes, first_seconds=1
            ):
                print(f"  {when}: {memory}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        if schema:
            drop_postgresql_schema(args.postgresql, schema)
        shutil.rmtree(folder, ignore_errors=True)


def fmt_rss(sizes):
    return " / ".join(f"{size:.1f}" for size in sizes)


def memory_text(server):
    return f"RSS {fmt_rss(server.rss_mib())}; PSS of all its processes {server.pss_mib():.1f}"


if __name__ == "__main__":
    main()
