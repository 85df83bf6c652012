"""Whether anything was committed to the database since a moment, by any process."""

import os
import sqlite3
import threading
from pathlib import Path

from sqlalchemy.exc import OperationalError

from .engine import check_same_file, file_identity, main_file
from .process_local import ProcessLocal
from .wal_guard import WalGuard


class DatabaseStamp:
    """A value that changes whenever anything may have been committed to the database file,
    by any process: two equal readings mean nothing was committed in between.

    It is SQLite's data_version, read on a connection of its own that never writes: the
    version changes for the commits of every other connection."""

    def __init__(self, path: str, timeout_s: float, wal_guard: WalGuard | None = None) -> None:
        self.path = os.path.abspath(path)
        self.timeout_s = timeout_s
        self.wal_guard = wal_guard or WalGuard()
        self._lock = threading.Lock()  # a gthread worker's threads share the connection
        self._reader = ProcessLocal(self._open)

    def __call__(self) -> int:
        with self._lock:
            connection, opened, wal_opened = self._reader.get()
            # Nothing is written on this answer; but one from a file that is gone may be
            # an answer that should have written.
            check_same_file(self.path, opened)
            self.wal_guard.check(connection, wal_opened)
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
                self.wal_guard.closed()

    def _open(self) -> "_Reader":
        """(connection, the file's identity when it was opened, its WAL file's)."""
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
        try:
            # A read opens the WAL file, which the connection then keeps open.
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            wal_opened = self.wal_guard.opened(connection, main_file(connection))
        except sqlite3.Error as error:
            connection.close()
            raise OperationalError("open the database", None, error) from error
        return connection, opened, wal_opened


# A process's connection that reads the stamp, and the identities of the file and of its WAL
# file when it was opened.
_Reader = tuple[sqlite3.Connection, tuple[int, int] | None, tuple[int, int] | None]
