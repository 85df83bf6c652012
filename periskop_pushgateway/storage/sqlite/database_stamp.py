"""Whether anything was committed to the database since a moment, by any process."""

import os
import sqlite3
import threading
from pathlib import Path

from sqlalchemy.exc import OperationalError

from .engine import check_same_file, file_identity
from .process_local import ProcessLocal


class DatabaseStamp:
    """A value that changes whenever anything may have been committed to the database file,
    by any process: two equal readings mean nothing was committed in between.

    It is SQLite's data_version, read on a connection of its own that never writes: the
    version changes for the commits of every other connection."""

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = os.path.abspath(path)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # a gthread worker's threads share the connection
        self._reader = ProcessLocal(self._open)

    def __call__(self) -> int:
        with self._lock:
            connection, opened = self._reader.get()
            # Nothing is written on this answer; but one from a file that is gone may be
            # an answer that should have written.
            check_same_file(self.path, opened)
            try:
                version: int = connection.execute("PRAGMA data_version").fetchone()[0]
                return version
            except sqlite3.Error as error:
                raise OperationalError("PRAGMA data_version", None, error) from error

    def close(self) -> None:
        """Close this process's connection (it is opened again when next needed)."""
        with self._lock:
            reader = self._reader.release()
            if reader is not None:
                reader[0].close()

    def _open(self) -> "_Reader":
        """(connection, the file's identity when it was opened)."""
        opened = file_identity(self.path)
        try:
            # mode=rw: a database file that is gone is not created anew, empty, at the path.
            connection = sqlite3.connect(
                f"{Path(self.path).as_uri()}?mode=rw",
                uri=True,
                timeout=self.timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise OperationalError("open the database", None, error) from error
        return connection, opened


# A process's connection that reads the stamp, and the file's identity when it was opened.
_Reader = tuple[sqlite3.Connection, tuple[int, int] | None]
