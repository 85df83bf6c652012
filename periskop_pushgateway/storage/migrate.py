"""Bringing the database schema up to date with the Alembic migrations in migrations/."""

import functools
import importlib.resources
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from .engines import Database, foreign_keys_off, lock_for_migration

log = logging.getLogger(__name__)


def migrations_directory() -> str:
    """migrations/ is installed as the package periskop_pushgateway.migrations (setup.cfg);
    a source tree that was never installed uses it where it stands."""
    try:
        return str(importlib.resources.files("periskop_pushgateway.migrations"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", migrations_directory())
    config.attributes["connection"] = connection
    return config


def upgrade_database(database: Database) -> str | None:
    """Upgrade to the newest schema; safe when several workers start at once.

    The whole upgrade runs in one transaction that first takes the database's write lock
    (SQLite) or an advisory lock (PostgreSQL): the first worker migrates, the others wait,
    then find the schema current and do nothing.
    """
    with database.write_engine.connect() as connection, foreign_keys_off(connection):
        connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with connection.begin():
            lock_for_migration(connection)
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(alembic_config(connection), "head")
            after = MigrationContext.configure(connection).get_current_revision()
    database.backend.wal_sync()
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)
    return after


# Read once: the migrations this process was started with are the schema its code needs.
@functools.cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class DatabaseNotCurrent(RuntimeError):
    pass


def check_database_current(engine: Engine) -> None:
    """Refuse to start on a schema this version does not know, with what to do about it."""
    problem = schema_problem(engine)
    if problem:
        raise DatabaseNotCurrent(
            f"{problem}: run `periskop-pushgateway upgrade-db` "
            "(or set PERISKOP_PUSHGATEWAY_AUTO_MIGRATE=true)"
        )


def schema_problem(engine: Engine) -> str | None:
    """None when the database holds the schema this version needs, else what differs.
    Raises SQLAlchemy's errors when the database does not answer."""
    with engine.connect() as connection, connection.begin():
        current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current != head:
        return f"the database schema is at {current or 'nothing'}, this gateway needs {head}"
    return None
