"""Database engines, and what differs between databases: SQLite tuned for several gunicorn
workers sharing one file; PostgreSQL (or any other SQLAlchemy URL) as it is.

The store's statements are the same everywhere; row locks (SELECT ... FOR UPDATE) are rendered
by SQLAlchemy where the database has them, and SQLite's BEGIN IMMEDIATE serializes writers
instead. The rest of what is dialect-specific is here."""

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import JSON, cast, create_engine, event, text, type_coerce
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from ..config import sqlite_synchronous
from .driver_sql import run_sql
from .sqlite.wal_index import WalIndexHeader
from .sqlite.wal_sync import WalSync


def is_sqlite(engine):
    return engine.dialect.name == "sqlite"


def database_url(text):
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


def create_engines(config):
    """Return (engine, write_engine): the second starts transactions that will write."""
    url = database_url(config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        # Parsed again: tests pass settings to create_app as they are.
        synchronous = sqlite_synchronous(config["SQLITE_SYNCHRONOUS"])
        # FULL's promise is kept by flushing the WAL after the write lock is released
        # (wal_sync.py), on connections that commit under NORMAL.
        wal_sync = WalSync() if synchronous == "FULL" else None
        engine, driver_snapshot = _create_sqlite_engine(
            url, config, "NORMAL" if wal_sync else synchronous, wal_sync
        )
        write_lock = WriteLock(f"{url.database}.writelock", config["SQLITE_BUSY_TIMEOUT_MS"] / 1000)
        write_engine = engine.execution_options(
            sqlite_begin="BEGIN IMMEDIATE",
            write_lock=write_lock,
            wal_sync=wal_sync or _no_sync,
            driver_snapshot=driver_snapshot,
            database_stamp=DatabaseStamp(url.database, config["SQLITE_BUSY_TIMEOUT_MS"] / 1000),
        )
        write_engine = write_engine.execution_options(
            write_connection=ThreadConnections(write_engine)
        )
    else:
        engine = create_engine(url, pool_pre_ping=True)
        write_engine = engine
    # A pooled connection must never be shared by a forked gunicorn worker and its parent.
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: _forget_pool(engine_ref))
    return engine, write_engine


def _forget_pool(engine_ref):
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def _create_sqlite_engine(url, config, synchronous, wal_sync=None):
    busy_timeout_ms = config["SQLITE_BUSY_TIMEOUT_MS"]
    wal_limit_bytes = config["SQLITE_WAL_LIMIT_BYTES"]
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
    path = os.path.abspath(url.database)

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection, record):
        # pysqlite's own transaction handling starts transactions late and never for DDL;
        # turning it off lets the "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _use_wal(cursor, busy_timeout_ms / 1000)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # SQLite checkpoints the WAL into the database every 1,000 pages; this bounds the
        # file it leaves behind, which would otherwise keep its largest size forever.
        cursor.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal_sync is not None:
            wal_sync.database_opened(_main_file(cursor))
        cursor.close()
        record.info["file_identity"] = _file_identity(path)

    def begin(connection, sql):
        """BEGIN on a connection (SQLAlchemy's, or a DriverConnection) whose file is still
        the one at the path. On the driver's cursor: every transaction begins here, and
        execute() would add a quarter to an empty one (35.6 against 26.2 µs, timeit)."""
        _check_same_file(path, connection.connection.info.get("file_identity"))
        run_sql(connection, sql)

    @event.listens_for(engine, "begin")
    def begin_transaction(connection):
        # A write takes the lock up front (BEGIN IMMEDIATE): a deferred transaction that
        # read first could not upgrade to a write while another worker writes, and would
        # fail at once with "database is locked" instead of waiting its turn.
        begin(connection, connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    @contextlib.contextmanager
    def driver_snapshot():
        """A read transaction on a pooled connection's driver, for reads that run only
        DriverStatements: without SQLAlchemy's Connection and Transaction, an empty one takes
        11 to 13 µs against 27 (timeit), and a push that changes nothing runs one."""
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

    dialect: object
    connection: object


def _file_identity(path):
    """(device, inode) of the file at path, or None when there is none."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _main_file(connection):
    """The database file as SQLite opened it (symbolic links followed): its WAL and its
    wal-index are beside it. connection: a DB-API connection or cursor."""
    [main_file] = [
        file for _, name, file in connection.execute("PRAGMA database_list") if name == "main"
    ]
    return main_file


def _check_same_file(path, opened):
    """Refuse a transaction on a connection whose database file is no longer the one at the
    configured path (deleted, moved, replaced): SQLite would go on writing into the open,
    unlinked file, and every push it acknowledged would be lost at the next restart."""
    if _file_identity(path) != opened:
        raise OperationalError(
            "BEGIN",
            None,
            sqlite3.OperationalError(
                f"the database file {path} was deleted, moved or replaced since this process "
                "opened it: nothing is written into a file that is gone; restore the file or "
                "restart the gateway"
            ),
        )


def snapshot_options(connection):
    """Execution options under which a transaction reads one snapshot throughout. SQLite's
    transactions always do; PostgreSQL's default (READ COMMITTED) takes one per statement."""
    if connection.dialect.name == "postgresql":
        return {"isolation_level": "REPEATABLE READ"}
    return {}


def write_lock_for(write_engine):
    """What a write transaction holds around it: for SQLite, the WriteLock on a file beside
    the database's; elsewhere nothing (the database's row locks order the writers)."""
    return write_engine.get_execution_options().get("write_lock", contextlib.nullcontext)


def write_connection_for(write_engine):
    """For SQLite, the ThreadConnections its writes run on (below); elsewhere None, and each
    write checks a connection out of the pool (pre-pinged: a PostgreSQL server may have
    closed it)."""
    return write_engine.get_execution_options().get("write_connection")


def database_stamp_for(write_engine):
    """For SQLite, the DatabaseStamp of its file (below); elsewhere None."""
    return write_engine.get_execution_options().get("database_stamp")


def driver_snapshot_for(write_engine):
    """For SQLite, a context manager giving a DriverConnection in a read transaction (see
    driver_snapshot above); elsewhere None."""
    return write_engine.get_execution_options().get("driver_snapshot")


def wal_sync_for(write_engine):
    """What makes a write transaction durable once it committed and its write lock is
    released: for SQLite under synchronous=FULL, the WalSync of its database; elsewhere
    nothing (the commit itself is)."""
    return write_engine.get_execution_options().get("wal_sync", _no_sync)


class _NoSync:
    """The commit itself is durable (or, under NORMAL, is not meant to be): nothing to flush."""

    def __call__(self):
        pass

    def committed(self):
        pass

    def unflushed(self):
        return False

    def flush_commits(self):
        pass


_no_sync = _NoSync()


class ThreadConnections:
    """Each thread's own Connection of an engine, checked out of its pool once: a write
    transaction on it takes 23 µs against 41 with a connection checked out for each (timeit,
    an update of one row). A gthread worker holds one per thread, beside the pool's others
    (5, and 10 more at need) for reads."""

    def __init__(self, engine):
        self._engine = engine
        self._local = threading.local()
        # A Connection inherited across fork() is never used nor closed: its driver
        # connection is the parent's (SQLite's locks, see DatabaseStamp).
        self._inherited = []

    def __call__(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if getattr(local, "connection", None) is not None:
                self._inherited.append(local.connection)
            local.connection = self._engine.connect()
            local.pid = os.getpid()
        return local.connection

    def close(self):
        """Close the calling thread's Connection (a new one is made when next needed)."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            local.connection.close()
            local.pid = local.connection = None


class DatabaseStamp:
    """A value that changes whenever anything may have been committed to the database file,
    by any process. Two equal readings mean nothing was committed in between.

    It is the header of the database's wal-index (wal_index.py), read from memory, where there
    is one to read; otherwise SQLite's data_version, read on a connection of its own that never
    writes (the version changes for commits by every other connection). That connection stays
    open either way: it keeps the wal-index file in use. About 1.5 µs (timeit) with the
    header, 4 with data_version, the check that the file at the path is still the one opened
    included. (A header is bytes and a data_version an int: the two never compare equal.)"""

    def __init__(self, path, timeout_s):
        self.path = os.path.abspath(path)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # a gthread worker's threads share the connection
        self._connection = None
        self._opened = None  # the file's identity when the connection was opened
        self._wal_index = None  # its WalIndexHeader, where there is one
        self._pid = None
        # A connection inherited across fork() is never used nor closed: closing it would
        # release this process's locks on the file (SQLite's POSIX locks).
        self._inherited = []

    def __call__(self):
        with self._lock:
            if self._pid != os.getpid():
                self._open()
            # Nothing is written on this answer; but one from a file that is gone may be
            # an answer that should have written.
            _check_same_file(self.path, self._opened)
            if self._wal_index is not None:
                header = self._wal_index.read()
                if header is not None:
                    return header
            return self._data_version()

    def _data_version(self):
        try:
            return self._connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as error:
            raise OperationalError("PRAGMA data_version", None, error) from error

    def close(self):
        """Close this process's connection (it is opened again when next needed)."""
        with self._lock:
            if self._pid == os.getpid():
                if self._wal_index is not None:
                    self._wal_index.close()
                self._connection.close()
                self._pid = self._connection = self._wal_index = None

    def _open(self):
        if self._connection is not None:
            self._inherited.append(self._connection)
        self._opened = _file_identity(self.path)
        try:
            # mode=rw: a database file that is gone is not created anew, empty, at the path.
            self._connection = sqlite3.connect(
                f"{Path(self.path).as_uri()}?mode=rw",
                uri=True,
                timeout=self.timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise OperationalError("open the database", None, error) from error
        self._pid = os.getpid()
        # A mapping inherited across fork() is dropped: each process maps the file itself.
        self._wal_index = None
        # A first read maps the wal-index into this connection, which then keeps it in use.
        self._data_version()
        self._wal_index = WalIndexHeader.open(_main_file(self._connection))


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

    def __init__(self, path, timeout_s):
        self.path = path
        self.timeout_s = timeout_s
        self._threads = threading.Lock()  # flock() does not exclude threads sharing the file
        self._fd = None
        self._pid = None

    @contextlib.contextmanager
    def __call__(self):
        with self._threads:
            lock_file = self._open()
            self._acquire(lock_file)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _open(self):
        # Each process opens the file itself: a descriptor inherited across fork() shares
        # its flock() with the parent and every sibling, and would exclude none of them.
        # Read-only: flock() needs no more, and the file system stays free to be remounted.
        if self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as error:
                raise OperationalError("open the write lock", None, error) from error
            self._pid = os.getpid()
        return self._fd

    def _acquire(self, lock_file):
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


def _use_wal(cursor, timeout):
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


# Any constant will do: it only has to be the same in every process of this gateway.
_POSTGRESQL_MIGRATION_LOCK = 0x7065726973


@contextlib.contextmanager
def foreign_keys_off(connection):
    """SQLite: foreign keys unenforced while migrations run on this connection. A batch
    migration copies a table and drops the old one, and with them on, that drop deletes every
    row referring to the table (ON DELETE CASCADE): all occurrences and counters. The pragma
    is set outside any transaction, where alone it takes effect."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver_connection = connection.connection.driver_connection
    driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver_connection.execute("PRAGMA foreign_keys=ON")


def lock_for_migration(connection):
    """Hold off other processes migrating the same database until this transaction ends.

    SQLite: the transaction began with BEGIN IMMEDIATE, which already holds the write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRESQL_MIGRATION_LOCK}
        )


def database_size(connection):
    """Bytes the database takes, as the database itself counts them (None when unknown)."""
    if connection.dialect.name == "sqlite":
        page_count = connection.exec_driver_sql("PRAGMA page_count").scalar()
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
        return page_count * page_size
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return None


def json_text(dialect_name, column, path):
    """The text at `path` (a tuple of keys) inside a column holding JSON text, or NULL.
    SQLite's JSON functions read the text as it is; PostgreSQL needs it cast to JSON."""
    document = cast(column, JSON) if dialect_name == "postgresql" else type_coerce(column, JSON)
    return document[path].as_string()
