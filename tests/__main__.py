"""The whole suite on both databases at once: `python -m tests [pytest arguments]`.

Runs pytest on SQLite and, beside it, on PostgreSQL (PERISKOP_PUSHGATEWAY_TEST_DATABASE); each
pass writes to a file of its own, shown whole when that pass ends, so the two never mix. Exits
with the first failing pass's status, 0 when both pass.

Side by side they take about the time of the longer one: much of each pass waits on servers
starting and stopping (gunicorn, nginx, podman), which the other pass fills. Run one database
alone with plain pytest (see docs/development.md).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSES = ("sqlite", "postgresql")


def main(arguments):
    folder = Path(tempfile.mkdtemp(prefix="periskop-pushgateway-tests-"))
    started = time.monotonic()
    running = {}
    for database in PASSES:
        output = (folder / f"{database}.log").open("wb")
        command = [sys.executable, "-m", "pytest", *arguments]
        environment = {**os.environ, "PERISKOP_PUSHGATEWAY_TEST_DATABASE": database}
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        running[process] = (database, output)
        print(f"{database}: pytest started, writing to {output.name}", flush=True)
    statuses = {}
    try:
        _wait(running, statuses, started)
    finally:  # interrupted: no pass goes on alone
        for process in running:
            _stop(process)
    for database in PASSES:
        print(f"{database}: {'passed' if statuses[database] == 0 else 'FAILED'}")
    return next((status for status in statuses.values() if status), 0)


def _wait(running, statuses, started):
    while running:
        for process in [process for process in running if process.poll() is not None]:
            database, output = running.pop(process)
            output.close()
            minutes = (time.monotonic() - started) / 60
            print(f"\n===== {database} pass: exit status {process.returncode}, {minutes:.1f} min")
            sys.stdout.write(Path(output.name).read_text(errors="replace"))
            sys.stdout.flush()
            statuses[database] = process.returncode
        time.sleep(1)


def _stop(process):
    """End an interrupted pass, letting it stop the servers its tests started first: Ctrl-C
    in a terminal reaches it too, and pytest then tears its fixtures down. One that goes on is
    sent its own SIGINT, and killed only if that does not end it either."""
    for nudge, patience in ((None, 10), (signal.SIGINT, 30), (signal.SIGKILL, 30)):
        if nudge is not None:
            process.send_signal(nudge)
        try:
            process.wait(patience)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
