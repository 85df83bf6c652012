"""A turn that at most one process of the gateway takes at a time, skipped by the others."""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError

from .process_local import ProcessLocal


class TurnLock:
    """An flock() on a file beside the database: whoever finds it held skips its turn rather
    than wait. The kernel releases it when its holder dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()  # flock() does not exclude threads sharing the file
        # Each process opens the file itself: an inherited descriptor shares its flock().
        self._file = ProcessLocal(self._open)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[bool]:
        """True inside when this process holds the turn, False when another does."""
        if not self._threads.acquire(blocking=False):
            yield False
            return
        try:
            lock_file = self._file.get()
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise OperationalError("open the housekeeping lock", None, error) from error
