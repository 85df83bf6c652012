"""Every transaction begins, and every commit is acknowledged, only while the WAL file at the
path is still the one this process's connections opened.

A connection keeps its WAL file open: when the file is deleted or replaced under it, SQLite
goes on writing commits into the open, unlinked file, and every commit not yet copied into
the database file by a checkpoint is lost at the next restart. SQLite itself never deletes
or replaces the WAL file while a connection has it open (it deletes it when the last
connection closes; its checkpoints truncate it), so a WAL file at the path that is not the
one opened is someone else's doing.

When it happens, the connection that notices copies what the WAL file it holds contains into
the database file (a checkpoint: acknowledged pushes are then in the file a restart reads)
and refuses the transaction; the process refuses every transaction until the file at the
path is the one it opened again (restored) or the gateway is restarted (with a new WAL).
"""

import logging
import os
import sqlite3
import threading

from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import PoolProxiedConnection

from .engine import file_identity

log = logging.getLogger(__name__)


class WalGuard:
    def __init__(self) -> None:
        self.wal_path: str | None = None
        # (device, inode) of the WAL file this process's connections opened, and the process
        # that opened it: a forked worker opens its own connections.
        self._opened: tuple[int, int] | None = None
        self._pid: int | None = None
        # This process's connections open: once none is, the file may be a new one (SQLite
        # deletes it when the last connection of every process closes).
        self._connections = 0
        self._lock = threading.Lock()
        self._salvaged = False  # what the gone file held is in the database file

    def opened(self, connection: sqlite3.Connection, database_file: str) -> tuple[int, int] | None:
        """Told by a connection that has just opened its WAL file (after its first read);
        returns the identity of that file, for check()."""
        self.wal_path = f"{database_file}-wal"
        identity = file_identity(self.wal_path)
        with self._lock:
            if self._pid != os.getpid() or self._connections == 0:
                self._opened, self._pid, self._salvaged = identity, os.getpid(), False
                self._connections = 0
            self._connections += 1
        return identity

    def closed(self) -> None:
        """Told when a connection that opened() counted is closed."""
        with self._lock:
            if self._pid == os.getpid():
                self._connections -= 1
                if self._connections == 0:
                    self._opened = self._pid = None

    def check(self, connection: sqlite3.Connection, opened: tuple[int, int] | None) -> None:
        """Refuse a transaction, its commit, or the acknowledgement of its commit, when the
        WAL file at the path is not the one this process opened. connection: the DB-API
        connection about to begin, to commit (its transaction is rolled back), or that just
        committed; opened: what opened() told it."""
        if self.wal_path is None or self._pid != os.getpid():
            return  # this process opened no WAL file yet
        expected = self._opened
        if file_identity(self.wal_path) == expected:
            if self._salvaged:
                self._salvaged = False  # restored: a later loss needs a checkpoint of its own
            return
        if connection.in_transaction:  # about to commit: nothing of it is kept
            connection.rollback()
        outcome = "this connection opened another file"
        if opened == expected:  # the connection holds the gone file: what it held is saved
            outcome = self._salvage(connection)
        raise wal_gone(self.wal_path, outcome)

    def check_pooled(self, pooled: PoolProxiedConnection) -> None:
        """check() on a pooled connection, told what opened() told it when it was made."""
        connection = pooled.driver_connection
        assert connection is not None  # checked out: its DB-API connection is open
        self.check(connection, pooled.info.get("wal_identity"))

    def opened_file(self) -> tuple[int, int] | None:
        """(device, inode) of the WAL file this process's connections opened, or None."""
        return self._opened if self._pid == os.getpid() else None

    def _salvage(self, connection: sqlite3.Connection) -> str:
        """Copy every frame of the WAL file the connection holds into the database file."""
        with self._lock:
            if self._salvaged:
                return "what it held was copied into the database file"
            try:
                busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            except sqlite3.Error as error:
                outcome = f"copying what it held into the database file failed ({error})"
            else:
                if busy or copied < frames:
                    outcome = (
                        f"{copied} of its {frames} frames were copied into the database file "
                        "(others were busy): the next transaction tries again"
                    )
                else:
                    self._salvaged = True
                    outcome = "what it held was copied into the database file"
            log.error("the WAL file %s was deleted or replaced: %s", self.wal_path, outcome)
            return outcome


def wal_gone(wal_path: str, outcome: str) -> OperationalError:
    return OperationalError(
        "BEGIN",
        None,
        sqlite3.OperationalError(
            f"the WAL file {wal_path} was deleted or replaced since this process opened it: "
            f"nothing more is written; {outcome}; restore the file or restart the gateway "
            "(a file at that path is taken for the WAL at the start: move aside one that is "
            "not this database's)"
        ),
    )
