"""The lock SQLite's writers queue on, one at a time, before BEGIN IMMEDIATE."""

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError

from .process_local import ProcessLocal


class WriteLock:
    """Writers queue here, one at a time, before they BEGIN IMMEDIATE.

    Without it, a worker that finds SQLite's write lock taken sleeps in SQLite's busy handler
    for 1, 2, 5, 10... ms before it looks again, while the write it waits for takes about one:
    with several workers pushing, they spent more time asleep than writing. Here a waiting
    writer looks again within a fraction of a millisecond. An flock() is released by the
    kernel when its holder dies, so a crashed worker never leaves it held. Waiting longer than
    the busy timeout fails as SQLite itself would ("database is locked": 503, Retry-After).
    """

    _FIRST_PAUSE_S = 0.0001
    _LONGEST_PAUSE_S = 0.001

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._threads = threading.Lock()  # flock() does not exclude threads sharing the file
        # Each process opens the file itself: a descriptor inherited across fork() shares
        # its flock() with the parent and every sibling, and would exclude none of them.
        self._file = ProcessLocal(self._open)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._threads:
            lock_file = self._file.get()
            self._acquire(lock_file)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _open(self) -> int:
        # Read-only: flock() needs no more, and the file system stays free to be remounted.
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise OperationalError("open the write lock", None, error) from error

    def _acquire(self, lock_file: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        pause = self._FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError(
                        "acquire the write lock",
                        None,
                        sqlite3.OperationalError("database is locked"),
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, self._LONGEST_PAUSE_S)
