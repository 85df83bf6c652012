"""The repository's Dockerfile built and run with podman, for tests/test_container.py.

No registry of base images is needed: the base is Debian bookworm with Python, made from
Debian's packages by debootstrap (from the mirror this machine's apt uses) and imported into
podman's storage once; later runs find it there. The Python packages come from the package
index this machine's pip uses: the build sees its pip configuration and CA bundle, mounted
read-only, so the Dockerfile itself names no index.
"""

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from .servers import REPO, free_port

PODMAN = shutil.which("podman")
DEBOOTSTRAP = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
# What the Dockerfile's default, debian:bookworm-slim, holds: no Python until it installs it.
BASE_IMAGE = "localhost/debian-slim:bookworm"
IMAGE = "localhost/periskop-pushgateway:test"
# podman's default runtime and cgroup manager fail on this machine's cgroups; runc with
# cgroupfs works, within these limits on open files and processes.
GLOBAL_OPTIONS = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# The machine's own pip settings and certificate authorities, for pip inside the build. The
# authorities are mounted beside the image's own (which its ca-certificates package writes),
# and pip is pointed at them.
PIP_CONF = Path("/etc/pip.conf")
HOST_CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CERTIFICATES = "/run/host-certificates.crt"
APT_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
# What Debian's slim images leave out too: downloaded packages, package lists, documentation.
TRIMMED = [
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/locale/*",
]


def podman(*args, timeout=300, check=True):
    """Run podman; a failure raises with what podman said."""
    command = [PODMAN, *GLOBAL_OPTIONS, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr}")
    return done


def debian_mirror():
    """The Debian mirror this machine's apt uses for bookworm (not its security archive)."""
    for path in APT_SOURCES:
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".sources":  # deb822: "URIs:" and "Suites:" in one stanza
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:(.*)$", stanza, re.M)
                if uris and suites and "bookworm" in suites.group(1).split():
                    return uris.group(1)
        else:
            found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
            if found:
                return found.group(1)
    raise RuntimeError(f"no apt source for Debian bookworm in {[str(p) for p in APT_SOURCES]}")


def ensure_base_image():
    """Import the Debian base into podman's storage, unless it is there already."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="debian-base-", dir="/var/tmp") as root:
        subprocess.run(
            [
                DEBOOTSTRAP,
                "--variant=minbase",
                "bookworm",
                root,
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for pattern in TRIMMED:
            for entry in Path(root).glob(pattern):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [PODMAN, *GLOBAL_OPTIONS, "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            timeout=300,
        )
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr


def build_mounts(folder):
    """podman build's --volume options: this machine's pip settings, with its certificate
    authorities where they do not hide the image's own."""
    mounts = []
    if HOST_CERTIFICATES.exists():
        mounts.append(f"--volume={HOST_CERTIFICATES}:{BUILD_CERTIFICATES}:ro")
    if PIP_CONF.exists():
        conf = PIP_CONF.read_text().replace(str(HOST_CERTIFICATES), BUILD_CERTIFICATES)
        (folder / "pip.conf").write_text(conf)
        mounts.append(f"--volume={folder / 'pip.conf'}:{PIP_CONF}:ro")
    return mounts


def build_image():
    """`podman build` of the repository's Dockerfile on the Debian base; returns the image id.

    Docker's image format keeps the HEALTHCHECK (OCI's has none). The image this replaces is
    removed, so repeated runs do not pile up untagged images."""
    previous = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout
    with tempfile.TemporaryDirectory(prefix="periskop-build-") as folder:
        podman(
            "build",
            "--format=docker",
            "--layers=false",
            "--network=host",
            *LIMITS,
            *build_mounts(Path(folder)),
            f"--build-arg=BASE_IMAGE={BASE_IMAGE}",
            f"--tag={IMAGE}",
            str(REPO),
            timeout=900,
        )
    built = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    if previous.strip() and previous.strip() != built:
        podman("rmi", previous.strip(), check=False)
    return built


class Volume:
    """A podman named volume, removed at the end of the `with` block."""

    def __init__(self):
        self.name = f"periskop-test-{uuid.uuid4().hex[:12]}"

    def __enter__(self):
        podman("volume", "create", self.name)
        return self

    def __exit__(self, *exc):
        podman("volume", "rm", "--force", self.name, check=False)


class Container:
    """`podman run` of the image as a user runs it: its volume on /data and its port 7878
    published on a loopback port chosen at run time.

    Without a volume, it shares the host's network instead (to reach the test PostgreSQL
    server on the host's loopback), and `serve` binds that loopback port itself."""

    def __init__(self, volume=None, options=(), env=None):
        self.name = f"periskop-test-{uuid.uuid4().hex[:12]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.options = [*LIMITS, *options]
        self.options += [f"--env={name}={value}" for name, value in (env or {}).items()]
        self.command = []
        if volume:
            self.options += [
                f"--publish=127.0.0.1:{self.port}:7878",
                f"--volume={volume.name}:/data",
            ]
        else:
            self.options.append("--network=host")
            self.command = ["periskop-pushgateway", "serve", f"--bind=127.0.0.1:{self.port}"]

    def run(self):
        podman("run", "--detach", f"--name={self.name}", *self.options, IMAGE, *self.command)
        return self.wait_ready()

    def start(self):
        """Start it again after a stop: the same container, the same volume."""
        podman("start", self.name)
        return self.wait_ready()

    def stop(self, grace_seconds=40):
        """`podman stop`: SIGTERM, then SIGKILL if it has not exited within the grace period."""
        podman("stop", f"--time={grace_seconds}", self.name, timeout=grace_seconds + 60)

    def exit_code(self):
        return int(self.inspect("{{.State.ExitCode}}"))

    def inspect(self, template):
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def exec(self, *command):
        return podman("exec", self.name, *command).stdout

    def logs(self):
        return podman("logs", self.name, check=False).stdout[-4000:]

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            if self.inspect("{{.State.Running}}") != "true":
                raise RuntimeError(f"the container exited: {self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"the container did not become ready: {self.logs()}")

    def remove(self):
        # --volumes: the anonymous volume /data gets when none is mounted on it goes too.
        podman("rm", "--force", "--volumes", "--time=0", self.name, check=False)

    def __enter__(self):
        return self.run()

    def __exit__(self, *exc):
        self.remove()
