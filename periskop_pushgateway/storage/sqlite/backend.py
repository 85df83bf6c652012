"""SQLite as the store uses it: the engine, and the pieces a write needs beside it."""

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import URL, Connection, Engine
from sqlalchemy.exc import OperationalError

from ...config import sqlite_synchronous
from ..budget import DatabaseBudget, database_budget
from .database_stamp import DatabaseStamp
from .disk_reserve import DiskReserve, checkpoint, is_disk_full, writes_fail_for_room
from .engine import create_sqlite_engine
from .thread_connections import ThreadConnections
from .turn_lock import TurnLock
from .wal_guard import WalGuard
from .wal_sync import NO_SYNC, NoSync, WalSync
from .write_lock import WriteLock


@dataclass(frozen=True)
class SqliteBackend:
    """What a write on SQLite needs besides the engine, handed to the store."""

    # Writers of every process queue on it, one at a time, before BEGIN IMMEDIATE.
    write_lock: WriteLock
    # Makes a commit durable once the write lock is released (under synchronous=FULL).
    wal_sync: WalSync | NoSync
    # Each thread's Connection for writes.
    write_connections: ThreadConnections
    # A read transaction on a pooled driver connection, for DriverStatements alone.
    driver_snapshot: Callable
    # Changes whenever anything may have been committed, by any process.
    database_stamp: DatabaseStamp
    # Housekeeping's turn: one process of the gateway at a time.
    housekeeping_turn: TurnLock
    # Refuses what would be written into a WAL file deleted or replaced under the gateway.
    wal_guard: WalGuard
    # MAX_DATABASE_BYTES: what the pages in use may take (budget.py).
    budget: DatabaseBudget
    # Room on the database's filesystem that only writes freeing room may use.
    disk_reserve: DiskReserve
    # One writer at a time: a worker's waiting writes share a transaction (group_commit.py).
    one_writer = True

    def committing(self, connection: Connection) -> None:
        """Told at the end of a write transaction, before COMMIT: nothing is committed into
        a WAL file that is gone (OperationalError, the transaction rolled back)."""
        self.wal_guard.check_pooled(connection.connection)

    def committed(self, connection: Connection) -> None:
        """Told after each commit, the write lock still held: a commit that went into a WAL
        file gone in the meantime is not acknowledged (OperationalError)."""
        self.wal_guard.check_pooled(connection.connection)
        self.wal_sync.committed()

    def failed_for_room(self, error: OperationalError) -> bool:
        """Whether a write failed for a full disk: SQLITE_FULL, or an I/O error where SQLite
        could not grow a file it needs (its -shm, for a connection opened on a full disk)."""
        return is_disk_full(error) or self.disk_reserve.short_of_room()

    def release_disk_reserve(self) -> None:
        """Give the reserve's blocks back, the write lock held (see room_to_free)."""
        self.disk_reserve.release()

    @contextlib.contextmanager
    def room_to_free(self, connection: Connection) -> Iterator[None]:
        """Around a write that frees room, run again on a full disk with the write lock held
        and the disk reserve released (release_disk_reserve): the WAL copied into the
        database file first, so the write's frames go at the start of the WAL file; then
        copied again, so the next writes' frames do too. Freed pages are not zeroed meanwhile
        (secure_delete=FAST): zeroing writes each of them to the WAL, as much as the data
        deleted."""
        driver: Any = connection.connection.driver_connection
        checkpoint(driver)
        [(secure_delete,)] = driver.execute("PRAGMA secure_delete").fetchall()
        driver.execute("PRAGMA secure_delete=FAST")
        try:
            yield
        finally:
            driver.execute(f"PRAGMA secure_delete={('OFF', 'ON', 'FAST')[secure_delete]}")
            checkpoint(driver)

    def refill_disk_reserve(self) -> None:
        self.disk_reserve.refill()

    def disk_problem(self, engine: Engine) -> str | None:
        """Why writes fail for a full disk, or None."""
        return writes_fail_for_room(engine, self.disk_reserve.path)

    def close(self) -> None:
        """Close this process's and this thread's own connections (reopened when needed)."""
        self.write_connections.close()
        self.database_stamp.close()


def open_sqlite(url: URL, config: Mapping[str, Any]) -> tuple[Engine, Engine, SqliteBackend]:
    """(engine, write_engine, SqliteBackend) for a SQLite URL."""
    assert url.database is not None  # engines.database_url refuses a SQLite URL without one
    # Parsed again: tests pass settings to create_app as they are.
    synchronous = sqlite_synchronous(config["SQLITE_SYNCHRONOUS"])
    timeout_s = config["SQLITE_BUSY_TIMEOUT_MS"] / 1000
    # FULL's promise is kept by flushing the WAL after the write lock is released
    # (wal_sync.py), on connections that commit under NORMAL.
    wal_guard = WalGuard()
    wal_sync = WalSync(wal_guard) if synchronous == "FULL" else None
    engine, driver_snapshot = create_sqlite_engine(
        url, config, "NORMAL" if wal_sync else synchronous, wal_guard, wal_sync
    )
    write_engine = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    path = os.path.abspath(url.database)
    write_lock = WriteLock(f"{url.database}.writelock", timeout_s)
    disk_reserve = DiskReserve(
        f"{url.database}.reserve", config["SQLITE_DISK_RESERVE_BYTES"], write_lock
    )
    disk_reserve.refill()
    backend = SqliteBackend(
        write_lock=write_lock,
        wal_sync=wal_sync or NO_SYNC,
        write_connections=ThreadConnections(write_engine),
        driver_snapshot=driver_snapshot,
        database_stamp=DatabaseStamp(path, timeout_s, wal_guard),
        housekeeping_turn=TurnLock(f"{url.database}.housekeeping"),
        wal_guard=wal_guard,
        budget=database_budget(config),
        disk_reserve=disk_reserve,
    )
    return engine, write_engine, backend
