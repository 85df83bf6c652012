"""Room kept on the database's filesystem for the writes that free room.

SQLite in WAL mode needs disk to delete: the deletion's pages are appended to the WAL, and a
WAL whose frames grow the database file cannot be checkpointed and started over on a full
disk. So once pushes have filled the disk, an admin delete or a prune would fail like the
pushes. A file beside the database, `<database>.reserve`, holds real blocks (allocated, not a
sparse file) for them: such a write that fails for a full disk releases it while it holds the
write lock, so no push takes the room first, checkpoints, and runs again. Pushes never
release it. It grows back from the filesystem's free room, taking at most half of it.
"""

import errno
import logging
import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# The reserve grows by this much at a time, by less at the end of a filesystem's room.
_STEP_BYTES = 1024 * 1024
_SMALLEST_STEP_BYTES = 4096
# Writes are taken to fail for a full disk below this much room: a push of a few occurrences
# fits in it, and an SQLite checkpoint of the WAL's usual 1,000 pages (4 MB) nearly does.
ROOM_FOR_WRITES = 1024 * 1024


class DiskReserve:
    def __init__(
        self, path: str, size: int, write_lock: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self.path = path
        self.size = size
        # Held while the reserve grows, so that it never takes back room a freeing write was
        # given (release() is called with it held).
        self._write_lock = write_lock

    def held(self) -> int:
        """Bytes the reserve holds now."""
        return self._state()[0]

    def refill(self) -> None:
        """Grow the reserve toward its size, taking at most half of the room there is (the
        filesystem's free room and the reserve's own): a filesystem with little room is not
        filled by it. Never raises: a reserve that cannot grow now waits for the next call."""
        if not self._short():
            return
        try:
            with self._write_lock():
                before = self.held()
                held = self._grow()
        except (OSError, DBAPIError) as error:
            log.warning("the disk reserve %s cannot be made: %s", self.path, error)
            return
        if held >= self.size:
            log.info("disk reserve %s made: %d bytes", self.path, held)
        elif held > before:
            log.info(
                "disk reserve %s holds %d of its %d bytes: half the filesystem's room",
                self.path,
                held,
                self.size,
            )

    def short_of_room(self) -> bool:
        """Whether the filesystem has less than ROOM_FOR_WRITES free: writes fail there."""
        return free_bytes(self.path) < ROOM_FOR_WRITES

    def release(self) -> int:
        """Give the reserve's blocks back to the filesystem; the caller holds the write lock.
        Returns the bytes it held."""
        held = self.held()
        if held:
            with open(self.path, "r+b") as reserve:
                reserve.truncate(0)
            log.warning(
                "disk full: released the disk reserve %s (%d bytes) to free room in the database",
                self.path,
                held,
            )
        return held

    def _state(self) -> tuple[int, int]:
        """(bytes held, the file's size)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0, 0
        return stat.st_blocks * 512, stat.st_size

    def _target(self, held: int) -> int:
        room = free_bytes(self.path) + held
        return min(self.size, room // 2 // _SMALLEST_STEP_BYTES * _SMALLEST_STEP_BYTES)

    def _short(self) -> bool:
        held, size = self._state()
        if size > self.size:
            return True  # a smaller size was configured since
        if held >= self.size:
            return False
        # Grown a step at a time, not for each page a tick finds free.
        return self._target(held) >= held + min(_STEP_BYTES, self.size - held) > held

    def _grow(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size > self.size:
                os.ftruncate(fd, self.size)
            target = self._target(os.fstat(fd).st_blocks * 512)
            # From the start: blocks a filesystem gave back after a failed step are taken now.
            size, step = 0, _STEP_BYTES
            while size < target:
                step = min(step, target - size)
                try:
                    os.posix_fallocate(fd, size, step)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    if step <= _SMALLEST_STEP_BYTES:
                        break
                    step //= 2
                    continue
                size += step
            return os.fstat(fd).st_blocks * 512
        finally:
            os.close(fd)


def free_bytes(path: str) -> int:
    """Bytes the filesystem holding path has free for the gateway to write."""
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    # root may write into the blocks a filesystem keeps back for it (ext4's 5 %).
    free_blocks = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return free_blocks * stat.f_frsize


def is_disk_full(error: BaseException) -> bool:
    """Whether a failed write failed for want of disk (SQLite's SQLITE_FULL, or ENOSPC)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(cause, sqlite3.Error):
        return getattr(cause, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(cause, OSError) and cause.errno == errno.ENOSPC


def checkpoint(driver: sqlite3.Connection) -> None:
    """Copy the WAL into the database file and have the next write start it over (RESTART:
    waits, within the busy timeout, for readers of older snapshots). driver: a DB-API
    connection in no transaction. One that fails is logged: the write may still fit in the
    room released."""
    try:
        busy, frames, copied = driver.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    except sqlite3.Error as error:
        log.warning("checkpoint on a full disk failed: %s", error)
        return
    if busy:
        log.warning("checkpoint on a full disk: %d of %d frames copied", copied, frames)


def writes_fail_for_room(engine: Engine, path: str) -> str | None:
    """Why writes fail for a full disk, or None: the filesystem's free room, with the database
    file's free pages (which writes reuse), under ROOM_FOR_WRITES. Reads alone, so that
    every worker tells the same, whoever filled the disk."""
    free = free_bytes(path)
    if free >= ROOM_FOR_WRITES:
        return None
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    if free + pages * page_size >= ROOM_FOR_WRITES:
        return None
    return "writes fail: the disk is full"
