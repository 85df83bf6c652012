"""A real nginx running deploy/nginx.conf, moved to a temp folder and loopback ports."""

import os
import re
import shutil
import signal
import subprocess
import time

import requests

from .processes import kill_session, start_in_own_session
from .servers import REPO, free_port

DEPLOY_CONF = REPO / "deploy" / "nginx.conf"
PUSH_NETWORKS_SNIPPET = REPO / "deploy" / "nginx-push-networks.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available():
    return os.path.exists(NGINX)


def replace_each_once(text, replacements, name):
    for pattern, replacement in replacements:
        text, found = re.subn(pattern, replacement, text, flags=re.M)
        assert found == 1, f"{name}: {pattern!r} matched {found} times"
    return text


def local_conf(folder, listen_port, upstream_port, push_networks=None):
    """deploy/nginx.conf with its paths under `folder` and its ports on 127.0.0.1; with
    `push_networks`, its include of deploy/nginx-push-networks.conf enabled, listing those.

    Each directive replaced must be found exactly once, so the test breaks loudly if the
    deployment file changes shape instead of silently testing something else.
    """
    replacements = [
        # Workers of an nginx started by root run as that user; the temp folder is root's.
        (r"^user \S+;", "user root;" if os.geteuid() == 0 else ""),
        (r"^pid \S+;", f"pid {folder}/nginx.pid;"),
        (r"^error_log \S+", f"error_log {folder}/error.log"),
        (r"^(\s*access_log) \S+", rf"\1 {folder}/access.log"),
        (r"^(\s*client_body_temp_path) \S+;", rf"\1 {folder}/body;"),
        (r"^(\s*proxy_temp_path) \S+;", rf"\1 {folder}/proxy;"),
        (r"^(\s*fastcgi_temp_path) \S+;", rf"\1 {folder}/fastcgi;"),
        (r"^(\s*uwsgi_temp_path) \S+;", rf"\1 {folder}/uwsgi;"),
        (r"^(\s*scgi_temp_path) \S+;", rf"\1 {folder}/scgi;"),
        (r"^(\s*listen) 80;", rf"\1 127.0.0.1:{listen_port};"),
        (r"^(\s*server) 127\.0\.0\.1:7878;", rf"\1 127.0.0.1:{upstream_port};"),
    ]
    if push_networks:
        replacements.append((r"^(\s*)# (include nginx-push-networks\.conf;)", r"\1\2"))
        snippet = PUSH_NETWORKS_SNIPPET.read_text()
        allowed = "".join(f"    allow {network};\n" for network in push_networks)
        snippet = replace_each_once(
            snippet, [(r"(^    allow \S+;\n)+", allowed)], "deploy/nginx-push-networks.conf"
        )
        (folder / PUSH_NETWORKS_SNIPPET.name).write_text(snippet)
    return replace_each_once(DEPLOY_CONF.read_text(), replacements, "deploy/nginx.conf")


class Nginx:
    """nginx in the foreground, proxying a loopback port to gunicorn's."""

    def __init__(self, folder, upstream_port, push_networks=None):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = folder / "nginx.conf"
        self.conf.write_text(local_conf(folder, self.port, upstream_port, push_networks))
        self.process = None

    @property
    def access_log(self):
        path = self.folder / "access.log"
        return path.read_text() if path.exists() else ""

    @property
    def error_log(self):
        path = self.folder / "error.log"
        return path.read_text() if path.exists() else ""

    def start(self, timeout=10):
        self.process = start_in_own_session(
            [
                NGINX,
                "-p",
                str(self.folder),
                "-c",
                str(self.conf),
                "-e",
                str(self.folder / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_until_listening(timeout)
        except BaseException:  # Ctrl-C included: `with` calls no __exit__ then
            self.stop()
            raise
        return self

    def _wait_until_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {self.process.returncode}:\n{self.error_log}"
                )
            try:
                requests.get(self.url + "/-/health", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen in time")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                kill_session(self.process)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
