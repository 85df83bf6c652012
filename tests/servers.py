"""Real gunicorn processes serving the gateway, for end-to-end tests."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn wsgi:app` (or another command) on a loopback port chosen at run time."""

    def __init__(self, database_url, workers=2, command=None, env=None, log_path=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.command = command or [
            sys.executable,
            "-m",
            "gunicorn",
            "wsgi:app",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "10",
        ]
        self.env = {**os.environ, "PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url, **(env or {})}
        self.log_path = log_path
        self.process = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [part.format(port=self.port) for part in self.command],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/-/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("gunicorn did not become healthy in time")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Graceful stop: gunicorn finishes the requests in flight, then exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout)

    def kill(self):
        """kill -9 the master and every worker at once, as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def worker_pids(self):
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.kill()
