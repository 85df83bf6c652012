"""Whether anything was committed to the database since a moment, by any process."""

import os
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.exc import OperationalError

from .engine import check_same_file, file_identity, main_file
from .process_local import ProcessLocal
from .wal_index import WalIndexHeader


class DatabaseStamp:
    """A value that changes whenever anything may have been committed to the database file,
    by any process: two equal readings mean nothing was committed in between.

    It is the header of the database's wal-index (wal_index.py), read from memory, where there
    is one to read; otherwise SQLite's data_version, read on a connection of its own that never
    writes (the version changes for commits by every other connection). That connection stays
    open either way: it keeps the wal-index file in use. (A header is bytes and a
    data_version an int: the two never compare equal.)"""

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = os.path.abspath(path)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # a gthread worker's threads share the connection
        self._reader = ProcessLocal(self._open)

    def __call__(self) -> bytes | int:
        with self._lock:
            reader = self._reader.get()
            # Nothing is written on this answer; but one from a file that is gone may be
            # an answer that should have written.
            check_same_file(self.path, reader.opened)
            if reader.wal_index is not None:
                header = reader.wal_index.read()
                if header is not None:
                    return header
            return _data_version(reader.connection)

    def close(self) -> None:
        """Close this process's connection (it is opened again when next needed)."""
        with self._lock:
            reader = self._reader.release()
            if reader is not None:
                if reader.wal_index is not None:
                    reader.wal_index.close()
                reader.connection.close()

    def _open(self) -> "_Reader":
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
        # A first read maps the wal-index into this connection, which then keeps it in use.
        _data_version(connection)
        return _Reader(connection, opened, WalIndexHeader.open(main_file(connection)))


class _Reader(NamedTuple):
    """A process's connection that reads the stamp, and what it found when opened."""

    connection: sqlite3.Connection
    # The file's identity when the connection was opened.
    opened: tuple | None
    # The database's WalIndexHeader, where there is one.
    wal_index: WalIndexHeader | None


def _data_version(connection: sqlite3.Connection) -> int:
    try:
        return connection.execute("PRAGMA data_version").fetchone()[0]
    except sqlite3.Error as error:
        raise OperationalError("PRAGMA data_version", None, error) from error
