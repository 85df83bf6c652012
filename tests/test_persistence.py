"""State lives in the database: restarts keep it, and the schema is managed by migrations."""

import contextlib
import json
import multiprocessing
import sqlite3
import subprocess
import sys

import pytest

from periskop_pushgateway import create_app
from periskop_pushgateway.storage.migrate import DatabaseNotCurrent, head_revision

from .conftest import new_database_url
from .helpers import aggregate, counts, occurrence, post, push_body, scrape


def test_export_is_identical_after_a_restart(make_app):
    client = make_app().test_client()
    post(client, push_body(aggregate("k", 3, [occurrence()]), target_uuid="p"))
    post(client, push_body(aggregate("k", 1)), group="g")
    before = client.get("/-/errors").data, client.get("/services/g/-/errors").data

    restarted = make_app().test_client()
    assert (restarted.get("/-/errors").data, restarted.get("/services/g/-/errors").data) == before


def test_counters_survive_a_restart(make_app):
    post(make_app().test_client(), push_body(aggregate("k", 3), target_uuid="p"))
    client = make_app().test_client()
    post(client, push_body(aggregate("k", 5), target_uuid="p"))
    assert counts(scrape(client)) == {"k": 5}


@pytest.mark.sqlite_only
def test_the_database_file_is_created_with_the_current_schema(tmp_path):
    path = tmp_path / "new" / "gateway.db"
    path.parent.mkdir()
    create_app({"DATABASE_URL": f"sqlite:///{path}"})
    with sqlite3.connect(path) as connection:
        [(revision,)] = connection.execute("SELECT version_num FROM alembic_version")
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert revision == head_revision()
    assert journal_mode == "wal"


def test_without_auto_migrate_an_old_schema_refuses_to_start(database_url):
    with pytest.raises(DatabaseNotCurrent, match="upgrade-db"):
        create_app({"DATABASE_URL": database_url, "AUTO_MIGRATE": False})


def test_upgrade_db_command_then_start_without_auto_migrate(database_url):
    result = subprocess.run(
        [sys.executable, "-m", "periskop_pushgateway", "upgrade-db"],
        env={"PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"revision {head_revision()}" in result.stdout
    client = create_app({"DATABASE_URL": database_url, "AUTO_MIGRATE": False}).test_client()
    assert post(client, push_body(aggregate("k", 1))).status_code == 200


def _start_gateway(database_url, barrier):
    barrier.wait()
    create_app({"DATABASE_URL": database_url})


@pytest.mark.parametrize("attempt", range(30))
def test_workers_starting_at_once_on_a_new_file_migrate_it_once(tmp_path, attempt):
    database_url = new_database_url(tmp_path)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    processes = [
        context.Process(target=_start_gateway, args=(database_url, barrier)) for _ in range(6)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 6
    client = create_app({"DATABASE_URL": database_url, "AUTO_MIGRATE": False}).test_client()
    assert post(client, push_body(aggregate("k", 1))).status_code == 200


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(url):
    with pytest.raises(ValueError, match="in-memory"):
        create_app({"DATABASE_URL": url})


@pytest.mark.sqlite_only
def test_health_is_503_while_the_database_is_unreachable(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'gateway.db'}"})
    client = app.test_client()
    assert client.get("/-/health").status_code == 200

    app.extensions["periskop_pushgateway"].store.engine.dispose()
    folder.rename(tmp_path / "moved")
    response = client.get("/-/health")
    assert response.status_code == 503
    push = post(client, push_body(aggregate("k", 1)))
    assert push.status_code == 503
    assert push.headers["Retry-After"] == "1"

    (tmp_path / "moved").rename(folder)
    assert client.get("/-/health").status_code == 200
    assert post(client, push_body(aggregate("k", 1))).status_code == 200


@pytest.mark.sqlite_only
def test_an_identical_repush_writes_nothing(client, database_url):
    body = push_body(aggregate("k", 3, [occurrence()]), target_uuid="p")
    post(client, body)
    watcher = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    version = watcher.execute("PRAGMA data_version").fetchone()
    post(client, body)
    assert watcher.execute("PRAGMA data_version").fetchone() == version
    post(client, push_body(aggregate("k", 4), target_uuid="p"))
    assert watcher.execute("PRAGMA data_version").fetchone() != version
    watcher.close()


@contextlib.contextmanager
def database_at_revision(database_url, revision):
    """A connection, in a transaction, to the database migrated up to an older revision."""
    from alembic import command

    from periskop_pushgateway.config import load_config
    from periskop_pushgateway.storage.engines import open_database
    from periskop_pushgateway.storage.migrate import alembic_config

    write_engine = open_database(load_config({}, {"DATABASE_URL": database_url})).write_engine
    with write_engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
        yield connection


def test_a_database_from_the_first_schema_is_upgraded_with_its_data(database_url):
    with database_at_revision(database_url, "0001") as connection:
        connection.exec_driver_sql(
            "INSERT INTO groups (id, name, target_uuid, revision, created_ns) "
            "VALUES (1, '', '11111111-2222-3333-4444-555555555555', 1, 0)"
        )
        connection.exec_driver_sql(
            "INSERT INTO aggregates (id, group_id, aggregation_key, total_count, severity, "
            "created_ns, last_seen_ns) VALUES (1, 1, 'old', 7, 'error', 0, 0)"
        )
        # Rows that refer to an aggregate survive migrations that rebuild its table.
        connection.exec_driver_sql(
            "INSERT INTO occurrences (aggregate_id, uuid, timestamp_ns, body) VALUES "
            f"(1, '{OLD_OCCURRENCE['uuid']}', 0, '{json.dumps(OLD_OCCURRENCE)}')"
        )
        connection.exec_driver_sql(
            "INSERT INTO client_counters (aggregate_id, client_uuid, last_total, updated_ns) "
            "VALUES (1, 'p', 7, 0)"
        )
    client = create_app({"DATABASE_URL": database_url, "RETENTION_SECONDS": 0}).test_client()
    export = scrape(client)
    assert export["target_uuid"] == "11111111-2222-3333-4444-555555555555"
    assert counts(export) == {"old": 7}
    assert export["aggregated_errors"][0]["latest_errors"] == [OLD_OCCURRENCE]
    assert (
        post(client, push_body(aggregate("old", 7), target_uuid="p")).get_json()["count_increase"]
        == 0
    )
    assert post(client, push_body(aggregate("old", 1), target_uuid="q")).status_code == 200
    assert counts(scrape(client)) == {"old": 8}


OLD_OCCURRENCE = {
    "error": {"class": "E", "message": "stored before", "stacktrace": [], "cause": None},
    "uuid": "6f1c1a2e-8d0b-4c59-9a1e-0f4b1d2c3e4f",
    "timestamp": "1970-01-01T00:00:00Z",
    "severity": "error",
    "http_context": None,
}


def test_counters_of_the_second_schema_are_kept_as_the_highest_counts(database_url):
    """A database of 0002 (counters under the pushed target_uuid, the last count) upgraded
    to 0003: the same processes re-pushing their state add nothing, a higher count adds the
    difference, and the counters come with their group."""
    long_uuid = "x" * 255
    with database_at_revision(database_url, "0002") as connection:
        connection.exec_driver_sql(
            "INSERT INTO groups (id, name, target_uuid, revision, created_ns) "
            "VALUES (1, 'jobs', '11111111-2222-3333-4444-555555555555', 1, 0)"
        )
        for aggregate_id, key, total in ((1, "a", 9), (2, "b", 4)):
            connection.exec_driver_sql(
                "INSERT INTO aggregates (id, group_id, aggregation_key, total_count, severity, "
                f"created_ns, last_seen_ns) VALUES ({aggregate_id}, 1, '{key}', {total}, "
                "'error', 0, 0)"
            )
        for aggregate_id, client, total in ((1, "p1", 5), (1, long_uuid, 4), (2, "p1", 4)):
            connection.exec_driver_sql(
                "INSERT INTO client_counters (aggregate_id, client_uuid, last_total, updated_ns) "
                f"VALUES ({aggregate_id}, '{client}', {total}, 0)"
            )
    client = create_app(
        {"DATABASE_URL": database_url, "RETENTION_SECONDS": 0, "ADMIN_OPEN": True}
    ).test_client()
    for process, key, total in (("p1", "a", 5), (long_uuid, "a", 3), ("p1", "b", 4)):
        body = push_body(aggregate(key, total), target_uuid=process)
        assert post(client, body, "jobs").get_json()["count_increase"] == 0
    post(client, push_body(aggregate("a", 6), target_uuid=long_uuid), "jobs")
    assert counts(scrape(client, "jobs")) == {"a": 11, "b": 4}
    # The counters belong to their group: wiping it forgets them.
    assert client.delete("/services/jobs").status_code == 200
    post(client, push_body(aggregate("a", 5), target_uuid="p1"), "jobs")
    assert counts(scrape(client, "jobs")) == {"a": 5}
