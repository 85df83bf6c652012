"""Real gunicorn processes serving the gateway, for end-to-end tests."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .conftest import TEST_DISK_RESERVE_BYTES, new_database_url
from .processes import kill_session, start_in_own_session

REPO = Path(__file__).resolve().parent.parent
# A graceful stop of the tests' gunicorn ends within this long unless a worker missed it.
_WORKERS_HEARD_S = 5


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn wsgi:app` (or another command) on a loopback port chosen at run time."""

    def __init__(self, database_url, workers=2, command=None, env=None, log_path=None, cwd=REPO):
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
        self.env = {
            **os.environ,
            "PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url,
            "PERISKOP_PUSHGATEWAY_SQLITE_DISK_RESERVE_BYTES": str(TEST_DISK_RESERVE_BYTES),
            **(env or {}),
        }
        self.log_path = log_path
        self.cwd = cwd
        self.pass_fds = ()
        self.process = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = start_in_own_session(
            [part.format(port=self.port) for part in self.command],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=log,
            pass_fds=self.pass_fds,
        )
        try:
            self._wait_until_healthy(timeout)
        except BaseException:
            # `with` calls no __exit__ when __enter__ raises (Ctrl-C included): a gunicorn
            # started here would outlive the test.
            self.kill()
            raise
        return self

    def _wait_until_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/-/health", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or (on a socket held for it) not answering yet
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not become healthy in time")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Graceful stop: gunicorn finishes the requests in flight, then exits.

        A worker forked just before the master passes the signal on misses it: until it has
        its own handlers, it runs the master's, which only queue the signal. gunicorn would
        kill it after its graceful timeout (30 s); it is sent the signal again instead."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(_WORKERS_HEARD_S)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                self.process.wait(timeout)

    def kill(self):
        """kill -9 the master and every worker at once, as a crash would."""
        if self.process and self.process.poll() is None:
            kill_session(self.process)

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


def gunicorn_on_new_database(folder, **options):
    """gunicorn (2 workers) on a new, empty database, logging into folder; use it with `with`."""
    return Gunicorn(new_database_url(folder), log_path=folder / "gunicorn.log", **options)


def served_by_console_script(database_url, log_path, workers=2):
    """The gateway as the README runs it: `periskop-pushgateway serve`, on a loopback port."""
    return Gunicorn(
        database_url,
        log_path=log_path,
        command=[
            str(Path(sys.executable).parent / "periskop-pushgateway"),
            "serve",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
    )


def production_gunicorn(database_url, folder, socket_activated=False, workers=2, env=None):
    """gunicorn as deployed: the repository's gunicorn.conf.py, 2 workers, behind one proxy."""
    metrics = folder / "metrics"
    metrics.mkdir(exist_ok=True)
    server_class = SocketActivatedGunicorn if socket_activated else Gunicorn
    return server_class(
        database_url,
        command=[
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "gunicorn.conf.py",
            "--workers",
            str(workers),
            "--bind",
            "127.0.0.1:{port}",
        ],
        env={
            "PERISKOP_PUSHGATEWAY_PROXY_HOPS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            **(env or {}),
        },
        log_path=folder / "gunicorn.log",
    )


class SocketActivatedGunicorn(Gunicorn):
    """gunicorn handed its listening socket as systemd's socket activation does (fd 3,
    LISTEN_FDS, LISTEN_PID). The socket belongs to this object and outlives every gunicorn
    started on it, as it belongs to systemd in deploy/periskop-pushgateway.socket."""

    def __init__(self, database_url, **kwargs):
        super().__init__(database_url, **kwargs)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        fd = self.listener.fileno()
        self.pass_fds = (fd,)
        # A small launcher moves the socket to fd 3 and execs gunicorn, keeping its pid.
        launcher = (
            "import os, sys; "
            f"os.dup2({fd}, 3); os.close({fd}); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        self.command = [sys.executable, "-c", launcher, *self.command]

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.listener.close()
