"""DriverStatement (driver_sql.py) against SQLAlchemy's own execute(), on the suite's database:
the same rows for the same statement and parameters, the same writes, the same errors."""

import sqlite3

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from periskop_pushgateway.storage import driver_sql
from periskop_pushgateway.storage.driver_sql import DriverStatement
from periskop_pushgateway.storage.models import groups
from periskop_pushgateway.storage.planning import key_digest, process_id
from periskop_pushgateway.storage.statements import (
    GROUP_AND_STATE_OF_KEYS,
    STATE_OF_KEYS,
    STORED_OCCURRENCES,
    STORED_UUIDS,
)

from .helpers import aggregate, occurrence, post, push_body


@pytest.fixture
def store(app):
    client = app.test_client()
    pushed = [
        aggregate(
            f"E{n}",
            n + 1,
            [
                occurrence(f"m{n}-{i}", timestamp=f"2026-01-0{i + 1}T00:00:00Z")
                for i in range(n % 3)
            ],
        )
        for n in range(70)
    ]
    assert post(client, push_body(*pushed, target_uuid="p"), group="g").status_code == 200
    return app.extensions["periskop_pushgateway"].store


def both(store, statement, parameters):
    """The rows of statement as DriverStatement gives them, and as execute() does."""
    with store.engine.connect() as connection, connection.begin():
        driven = statement.rows(connection, parameters)
        core = [tuple(row) for row in connection.execute(statement.statement, parameters)]
    return driven, core


@pytest.mark.parametrize("keys", [0, 1, 3, 70])
def test_state_of_keys_reads_what_execute_reads(store, keys):
    # 70 keys pass the IN-list lengths whose SQL is kept: compiled for the call instead.
    assert 70 > driver_sql.MAX_KEPT_LIST_LENGTH
    digests = [key_digest(f"E{n}") for n in range(keys)] + [key_digest("never pushed")]
    with store.engine.connect() as connection:
        group_id = connection.execute(select(groups.c.id).where(groups.c.name == "g")).scalar()
    for process in (0, process_id("p")):
        parameters = {"group_id": group_id, "process": process, "keys": digests}
        driven, core = both(store, STATE_OF_KEYS, parameters)
        assert sorted(driven, key=repr) == sorted(core, key=repr)
        assert len(driven) == keys
        if keys:
            ids = [row[0] for row in driven]
            driven, core = both(store, STORED_OCCURRENCES, {"aggregate_ids": ids})
            assert sorted(driven, key=repr) == sorted(core, key=repr)
            assert len(driven) == sum(n % 3 for n in range(keys))
            # The uuids alone: the first columns of the same rows.
            uuids, core = both(store, STORED_UUIDS, {"aggregate_ids": ids})
            assert sorted(uuids, key=repr) == sorted(core, key=repr)
            assert sorted(uuids) == sorted(row[:3] for row in driven)
        parameters = {"name": "g", "process": process, "keys": digests}
        driven, core = both(store, GROUP_AND_STATE_OF_KEYS, parameters)
        assert sorted(driven, key=repr) == sorted(core, key=repr)


def test_literals_the_statement_holds_are_sent_with_it(store):
    bump = DriverStatement(
        update(groups)
        .where(groups.c.name == bindparam("_name"))
        .values(revision=groups.c.revision + 7)
    )
    read = DriverStatement(select(groups.c.revision).where(groups.c.name == bindparam("name")))
    with store.engine.begin() as connection:
        [before] = read.first(connection, {"name": "g"})
        bump.execute(connection, {"_name": "g"})
        bump.execute_many(connection, [{"_name": "g"}, {"_name": "g"}])
        assert read.first(connection, {"name": "g"}) == (before + 21,)


def test_driver_errors_are_sqlalchemy_errors(store):
    add = DriverStatement(insert(groups))
    row = {"name": "g", "target_uuid": "u", "revision": 0, "created_ns": 0, "last_push_ns": None}
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        add.execute_many(connection, [row])
    with store.engine.connect() as connection, connection.begin():
        assert connection.execute(select(groups.c.id).where(groups.c.name == "g")).all()


@pytest.mark.sqlite_only
def test_a_locked_database_is_sqlalchemys_operational_error(store, database_url):
    """What the push view answers 503 for (tests/test_database_trouble.py)."""
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        touch = DriverStatement(
            update(groups).where(groups.c.name == bindparam("_name")).values(last_push_ns=1)
        )
        with store.engine.connect() as connection:
            connection.connection.driver_connection.execute("PRAGMA busy_timeout=0")
            with pytest.raises(OperationalError, match="locked"), connection.begin():
                touch.execute(connection, {"_name": "g"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
