"""The SQLite engine, tuned for several gunicorn workers sharing one file: WAL mode, the
synchronous level and busy timeout in force, and every transaction begun only while the
database file is still the one at the configured path."""

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import URL, Connection, Dialect, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from ..driver_sql import run_sql

if TYPE_CHECKING:
    from .wal_guard import WalGuard
    from .wal_sync import WalSync


def create_sqlite_engine(
    url: URL,
    config: Mapping[str, Any],
    synchronous: str,
    wal_guard: "WalGuard",
    wal_sync: "WalSync | None" = None,
) -> tuple[Engine, Callable[[], AbstractContextManager["DriverConnection"]]]:
    assert url.database is not None  # engines.database_url refuses a SQLite URL without one
    busy_timeout_ms = config["SQLITE_BUSY_TIMEOUT_MS"]
    wal_limit_bytes = config["SQLITE_WAL_LIMIT_BYTES"]
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
    path = os.path.abspath(url.database)

    @event.listens_for(engine, "connect")
    def configure_connection(
        dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry
    ) -> None:
        try:
            set_up(dbapi_connection, record)
        except sqlite3.Error as error:
            # Raised from here, the driver's error would reach the app unwrapped (a 500): a
            # connection opened on a full disk fails as any other database trouble does.
            raise OperationalError("connect", None, error) from error

    def set_up(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # pysqlite's own transaction handling starts transactions late and never for DDL;
        # turning it off lets the "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        use_wal(cursor, busy_timeout_ms / 1000)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # SQLite checkpoints the WAL into the database every 1,000 pages; this bounds the
        # file it leaves behind, which would otherwise keep its largest size forever.
        cursor.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        database_file = main_file(cursor)
        if wal_sync is not None:
            wal_sync.database_opened(database_file)
        # A read opens the WAL file, which the connection then keeps open.
        cursor.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        cursor.close()
        record.info["file_identity"] = file_identity(path)
        record.info["wal_identity"] = wal_guard.opened(dbapi_connection, database_file)

    @event.listens_for(engine, "close")
    def connection_closed(
        dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry
    ) -> None:
        if "wal_identity" in record.info:  # counted by wal_guard.opened
            wal_guard.closed()

    def begin(connection: "Connection | DriverConnection", sql: str) -> None:
        """BEGIN on a connection (SQLAlchemy's, or a DriverConnection) whose file, and WAL
        file, are still the ones at the path. On the driver's cursor: every transaction
        begins here, and execute() would add a quarter to an empty one."""
        pooled = connection.connection
        check_same_file(path, pooled.info.get("file_identity"))
        wal_guard.check_pooled(pooled)
        run_sql(connection, sql)

    @event.listens_for(engine, "begin")
    def begin_transaction(connection: Connection) -> None:
        # A write takes the lock up front (BEGIN IMMEDIATE): a deferred transaction that
        # read first could not upgrade to a write while another worker writes, and would
        # fail at once with "database is locked" instead of waiting its turn.
        begin(connection, connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    @contextlib.contextmanager
    def driver_snapshot() -> Iterator[DriverConnection]:
        """A read transaction on a pooled connection's driver, for reads that run only
        DriverStatements: without SQLAlchemy's Connection and Transaction it costs half as
        much, and a push that changes nothing runs one."""
        pooled = engine.raw_connection()
        try:
            snapshot = DriverConnection(engine.dialect, pooled)
            begin(snapshot, "BEGIN")
            try:
                yield snapshot
            finally:
                run_sql(snapshot, "ROLLBACK")  # it read: nothing to keep
        finally:
            pooled.close()

    return engine, driver_snapshot


class DriverConnection(NamedTuple):
    """What a DriverStatement needs of a connection: the dialect, and the pooled DB-API
    connection (its cursor)."""

    dialect: Dialect
    connection: PoolProxiedConnection


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at path, or None when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def main_file(connection: sqlite3.Connection | sqlite3.Cursor) -> str:
    """The database file as SQLite opened it (symbolic links followed): its WAL and its
    shared memory file are beside it. connection: a DB-API connection or cursor."""
    [main_file] = [
        file for _, name, file in connection.execute("PRAGMA database_list") if name == "main"
    ]
    return main_file


def check_same_file(path: str, opened: tuple[int, int] | None) -> None:
    """Refuse a transaction on a connection whose database file is no longer the one at the
    configured path (deleted, moved, replaced): SQLite would go on writing into the open,
    unlinked file, and every push it acknowledged would be lost at the next restart."""
    if file_identity(path) != opened:
        raise OperationalError(
            "BEGIN",
            None,
            sqlite3.OperationalError(
                f"the database file {path} was deleted, moved or replaced since this process "
                "opened it: nothing is written into a file that is gone; restore the file or "
                "restart the gateway"
            ),
        )


def use_wal(cursor: sqlite3.Cursor, timeout: float) -> None:
    """Put the database file in WAL mode (it stays so), so scrapes read while a push writes.

    Switching a new file to WAL needs an exclusive lock, and SQLite reports "database is
    locked" at once, without waiting, when several workers open the new file together.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
