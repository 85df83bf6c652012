"""Database engines, and what differs between databases: SQLite tuned for several gunicorn
workers sharing one file (sqlite/); PostgreSQL (or any other SQLAlchemy URL) as it is.

The store's statements are the same everywhere; row locks (SELECT ... FOR UPDATE) are rendered
by SQLAlchemy where the database has them, and SQLite's BEGIN IMMEDIATE serializes writers
instead. The rest of what is dialect-specific is here."""

import contextlib
import os
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    URL,
    ColumnElement,
    Connection,
    Engine,
    cast,
    create_engine,
    text,
    type_coerce,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from .sqlite.backend import SqliteBackend, open_sqlite
from .sqlite.wal_sync import NO_SYNC


def database_url(text: str) -> URL:
    """The DATABASE_URL setting as a SQLAlchemy URL; ValueError for one the gateway refuses."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(
            "PERISKOP_PUSHGATEWAY_DATABASE_URL is not a SQLAlchemy URL "
            "(dialect://user:password@host/database, or sqlite:///path)"
        ) from None
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            raise ValueError(
                "an in-memory SQLite database would lose every push: "
                "give PERISKOP_PUSHGATEWAY_DATABASE_URL a file, e.g. sqlite:////var/lib/periskop/gateway.db"
            )
    return url


class ServerBackend:
    """A database server (PostgreSQL): its row locks order the writers, its commits are
    durable, and each write checks a connection out of the pool (pre-pinged: the server may
    have closed it)."""

    write_lock = staticmethod(contextlib.nullcontext)
    room_to_free = staticmethod(contextlib.nullcontext)
    wal_sync = NO_SYNC
    write_connections = None
    driver_snapshot = None
    database_stamp = None
    # MAX_DATABASE_BYTES is kept on SQLite alone (budget.py says why).
    budget = None
    disk_reserve = None  # the server's disk is the server's
    one_writer = False

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextlib.contextmanager
    def housekeeping_turn(self) -> Iterator[bool]:
        """True inside when this process holds housekeeping's turn among every process of
        every instance on the database (PostgreSQL's advisory lock), False when another
        does. Other databases: always this process's turn."""
        if self._engine.dialect.name != "postgresql":
            yield True
            return
        with self._engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            key = {"key": _POSTGRESQL_HOUSEKEEPING_LOCK}
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar()
            try:
                yield bool(taken)
            finally:
                if taken:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)

    def committing(self, connection: Connection) -> None:
        pass

    def committed(self, connection: Connection) -> None:
        pass

    def refill_disk_reserve(self) -> None:
        pass

    def release_disk_reserve(self) -> None:
        pass

    def failed_for_room(self, error: OperationalError) -> bool:
        return False  # the server's disk is the server's: no reserve to release

    def disk_problem(self, engine: Engine) -> None:
        return None

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Database:
    """The configured database: its engines, and what a write needs beside them."""

    engine: Engine
    # Starts transactions that will write (BEGIN IMMEDIATE on SQLite).
    write_engine: Engine
    backend: SqliteBackend | ServerBackend


def open_database(config: Mapping[str, Any]) -> Database:
    """The Database that DATABASE_URL names."""
    url = database_url(config["DATABASE_URL"])
    backend: SqliteBackend | ServerBackend
    if url.get_backend_name() == "sqlite":
        engine, write_engine, backend = open_sqlite(url, config)
    else:
        engine = write_engine = create_engine(url, pool_pre_ping=True)
        backend = ServerBackend(engine)
    # A pooled connection must never be shared by a forked gunicorn worker and its parent.
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: _forget_pool(engine_ref))
    return Database(engine, write_engine, backend)


def _forget_pool(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def snapshot_options(connection: Connection) -> dict[str, Any]:
    """Execution options under which a transaction reads one snapshot throughout. SQLite's
    transactions always do; PostgreSQL's default (READ COMMITTED) takes one per statement."""
    if connection.dialect.name == "postgresql":
        return {"isolation_level": "REPEATABLE READ"}
    return {}


# Any constant will do: it only has to be the same in every process of this gateway.
_POSTGRESQL_MIGRATION_LOCK = 0x7065726973
_POSTGRESQL_HOUSEKEEPING_LOCK = _POSTGRESQL_MIGRATION_LOCK + 1


@contextlib.contextmanager
def foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys unenforced while migrations run on this connection. A batch
    migration copies a table and drops the old one, and with them on, that drop deletes every
    row referring to the table (ON DELETE CASCADE): all occurrences and counters. The pragma
    is set outside any transaction, where alone it takes effect."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver_connection: Any = connection.connection.driver_connection
    driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver_connection.execute("PRAGMA foreign_keys=ON")


def lock_for_migration(connection: Connection) -> None:
    """Hold off other processes migrating the same database until this transaction ends.

    SQLite: the transaction began with BEGIN IMMEDIATE, which already holds the write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRESQL_MIGRATION_LOCK}
        )


def database_size(connection: Connection) -> int | None:
    """Bytes the database takes, as the database itself counts them (None when unknown)."""
    if connection.dialect.name == "sqlite":
        page_count = connection.exec_driver_sql("PRAGMA page_count").scalar()
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
        return page_count * page_size  # type: ignore[operator]
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return None


def json_text(
    dialect_name: str, column: ColumnElement[Any], path: tuple[str, ...]
) -> ColumnElement[str]:
    """The text at `path` (a tuple of keys) inside a column holding JSON text, or NULL.
    SQLite's JSON functions read the text as it is; PostgreSQL needs it cast to JSON."""
    document = cast(column, JSON) if dialect_name == "postgresql" else type_coerce(column, JSON)
    return document[path].as_string()
