"""Power cuts while clients push: the database lies on a FUSE filesystem that keeps written bytes
in memory until they are flushed (tests/power_cut_fs.py), and a cut kills every gateway process,
then the filesystem, losing whatever was not flushed. Under SQLITE_SYNCHRONOUS=FULL no
acknowledged push is lost; under NORMAL, which answers before the disk has the commit, pushes
are lost: the control that shows the cut really drops what was not flushed."""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .helpers import counts
from .processes import start_in_own_session
from .pushers import ANONYMOUS_KEY, Pusher, check_export, stop_pushers, wait_for_acknowledged_pushes
from .servers import Gunicorn, production_gunicorn

pytestmark = pytest.mark.sqlite_only

FILESYSTEM = Path(__file__).parent / "power_cut_fs.py"
CLIENTS = 4
# Each client has this many pushes acknowledged between two cuts, at least.
PUSHES_BETWEEN_CUTS = 15
MOUNT_TIMEOUT_S = 10


class MountRefused(Exception):
    """The filesystem process ended before its mount appeared."""


class PowerCutDisk:
    """tests/power_cut_fs.py mounted at `mountpoint`, its disk in `backing`."""

    def __init__(self, folder: Path) -> None:
        self.backing = folder / "backing"
        self.mountpoint = folder / "disk"
        self.log_path = folder / "power_cut_fs.log"
        self.backing.mkdir()
        self.mountpoint.mkdir()
        self.process: subprocess.Popen | None = None

    def mount(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = start_in_own_session(
                [sys.executable, str(FILESYSTEM), str(self.backing), str(self.mountpoint)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not self.mounted():
            if self.process.poll() is not None:
                said = self.log_path.read_text(errors="replace").strip().splitlines()
                raise MountRefused(said[0] if said else f"exit {self.process.returncode}")
            assert time.monotonic() < deadline, "the filesystem was not mounted in time"
            time.sleep(0.02)

    def cut(self) -> None:
        """The power cut: the filesystem's process dies with what it had not flushed."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.unmount()

    def unmount(self) -> None:
        """Unmount (lazily, should a file still be open), and end the filesystem's process."""
        if self.mounted():
            for command in (["fusermount3", "-u", "-z"], ["fusermount", "-u", "-z"]):
                if shutil.which(command[0]):
                    subprocess.run([*command, str(self.mountpoint)], check=False)
                    break
            if self.mounted():
                subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
            assert not self.mounted(), f"{self.mountpoint} is still mounted"
        if self.process is not None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def mounted(self) -> bool:
        # os.path.ismount says False for a mount whose process died (ENOTCONN).
        wanted = str(self.mountpoint).replace(" ", "\\040")
        with open("/proc/self/mounts") as mounts:
            return any(line.split()[1] == wanted for line in mounts)


def fuse_missing() -> str | None:
    """Why a FUSE filesystem cannot be mounted here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as error:
        return f"/dev/fuse cannot be opened: {error}"
    try:
        import fuse  # noqa: F401
    except (ImportError, OSError) as error:  # fusepy raises OSError without libfuse.so.2
        return f"fusepy or libfuse2 is missing: {error}"
    return None


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[PowerCutDisk]:
    reason = fuse_missing()
    if reason:
        pytest.skip(reason)
    disk = PowerCutDisk(tmp_path)
    try:
        disk.mount()
    except MountRefused as refusal:
        pytest.skip(f"mounting a FUSE filesystem is not permitted here: {refusal}")
    yield disk
    disk.unmount()


class PausablePusher(Pusher):
    """A Pusher that waits while `running` is clear (the gateway is down), rather than spinning
    on refused connections; `paused` is set while it waits, its counts final."""

    def __init__(
        self, url: str, name: int, stop: threading.Event, running: threading.Event
    ) -> None:
        super().__init__(url, name, stop)
        self.running = running
        self.paused = threading.Event()
        self.answered_2xx = 0  # pushes acknowledged, cumulative and anonymous

    def send(self, body: dict) -> str:
        outcome = super().send(body)
        self.answered_2xx += outcome == "acknowledged"
        return outcome

    def run(self) -> None:
        while not self.stop.is_set():
            if self.running.is_set():
                self.paused.clear()
                self.push_cumulative()
                self.push_anonymous()
            else:
                self.paused.set()
                self.running.wait(0.1)


@dataclass
class Cut:
    acknowledged: int  # pushes acknowledged before this cut, since the first gateway started
    # Keys whose count after the cut is below the last one acknowledged: key -> (count, floor).
    lost: dict[str, tuple[int, int]] = field(default_factory=dict)


def integrity(database: Path) -> str:
    # Opened while the gateway holds the database open, so closing it checkpoints nothing.
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def scrape(gateway: Gunicorn) -> dict:
    response = requests.get(gateway.url + "/-/errors", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def push_through_power_cuts(
    disk: PowerCutDisk, synchronous: str, cuts: int
) -> tuple[list[Cut], list[PausablePusher], Gunicorn]:
    """Clients push to the gateway on `disk`; `cuts` times, gunicorn is killed, then the disk
    is cut, mounted again, and the gateway started again and scraped. Returns what each cut
    lost, the clients, and the gateway last started (running)."""
    folder = disk.mountpoint.parent
    database = disk.mountpoint / "gateway.db"

    def start_gateway() -> Gunicorn:
        gateway = production_gunicorn(
            f"sqlite:///{database}",
            folder,
            env={"PERISKOP_PUSHGATEWAY_SQLITE_SYNCHRONOUS": synchronous},
        )
        return gateway.start()

    gateway = start_gateway()
    stop, running = threading.Event(), threading.Event()
    pushers = [PausablePusher(gateway.url, name, stop, running) for name in range(CLIENTS)]
    running.set()
    for pusher in pushers:
        pusher.start()
    results = []
    try:
        for _ in range(cuts):
            wait_for_acknowledged_pushes(pushers, more_than=PUSHES_BETWEEN_CUTS, timeout=30)
            gateway.kill()  # the power cut stops every process first...
            running.clear()
            for pusher in pushers:  # each has heard of its last push
                assert pusher.paused.wait(30), pusher.name
            floor = {p.key: p.acknowledged for p in pushers}
            floor[ANONYMOUS_KEY] = sum(p.anonymous_acknowledged for p in pushers)
            disk.cut()  # ...and the disk keeps only what was flushed
            disk.mount()

            gateway = start_gateway()  # on another port: the clients push on once checked
            exported = counts(scrape(gateway))
            cut = Cut(acknowledged=sum(p.answered_2xx for p in pushers))
            for key, lowest in floor.items():
                if exported.get(key, 0) < lowest:
                    cut.lost[key] = (exported.get(key, 0), lowest)
            results.append(cut)
            assert integrity(database) == "ok"
            for pusher in pushers:
                pusher.url = gateway.url
            running.set()
    except BaseException:
        gateway.kill()
        raise
    finally:
        running.set()
        stop_pushers(pushers, stop)
    return results, pushers, gateway


def test_no_acknowledged_push_is_lost_to_power_cuts(disk: PowerCutDisk) -> None:
    results, pushers, gateway = push_through_power_cuts(disk, "FULL", cuts=4)
    try:
        assert [cut.lost for cut in results] == [{}] * len(results)
        for pusher in pushers:
            pusher.finish()
        check_export(scrape(gateway), pushers)
    finally:
        gateway.stop()
    print(f"FULL: {results[-1].acknowledged} pushes acknowledged over {len(results)} cuts")


def test_without_the_wal_flush_a_power_cut_loses_acknowledged_pushes(disk: PowerCutDisk) -> None:
    """The control: the same cuts under NORMAL lose acknowledged pushes, so the disk above
    really drops what was not flushed, and the test of FULL can fail."""
    results, _, gateway = push_through_power_cuts(disk, "NORMAL", cuts=2)
    gateway.stop()
    lost = [cut.lost for cut in results]
    assert any(lost), lost
    print(f"NORMAL: lost at {sum(map(bool, lost))} of {len(lost)} cuts: {lost}")
