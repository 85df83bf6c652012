"""A body pushed again into a database nothing was written to since it was last found to change
nothing is answered without reading (store.unchanged_summary's Verdict), and only then: any
write, by this worker or another process, and the clock reaching the next touch of the group
or of the process's counters, make it read again."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
import requests

from .helpers import Clock, aggregate, counts, occurrence, post, push_body, scrape
from .servers import gunicorn_on_new_database

MINUTE = 60 * 10**9
BODY = push_body(aggregate("k", 3, [occurrence("boom")]), target_uuid="p")
# Verdicts are SQLite's (its data_version): elsewhere every repeated push is read, and the tests
# about them are marked sqlite_only. The answer to BODY once it is stored:
UNCHANGED = {"aggregates": 1} | dict.fromkeys(
    ("new_occurrences", "count_increase", "dropped_keys", "stale_keys"), 0
)


def counting_reads(store):
    """The list of the reads that look for a push's changes from now on (pruning reads too)."""
    reads = []
    read_snapshot = store.read_snapshot

    def counted(read, **options):
        if "summary_if_unchanged" in read.__qualname__:
            reads.append(read)
        return read_snapshot(read, **options)

    store.read_snapshot = counted
    return reads


def push_until_remembered(client):
    """Counted once, remembered at the second push, its verdict found at the third."""
    assert post(client, BODY).get_json()["count_increase"] == 3
    for _ in range(2):
        assert post(client, BODY).get_json() == UNCHANGED


@pytest.mark.sqlite_only
def test_a_body_pushed_again_into_a_quiet_database_is_answered_without_a_read(app):
    client = app.test_client()
    push_until_remembered(client)
    reads = counting_reads(app.extensions["periskop_pushgateway"].store)
    for _ in range(3):
        assert post(client, BODY).get_json() == UNCHANGED
    assert reads == []
    assert counts(scrape(client)) == {"k": 3}


@pytest.mark.sqlite_only
def test_a_write_by_the_same_worker_makes_it_read_again(app):
    client = app.test_client()
    push_until_remembered(client)
    # On the connection the verdict was found on: its data_version stays, its changes count.
    assert client.delete("/-/errors").status_code == 200
    assert post(client, BODY).get_json()["count_increase"] == 3
    assert counts(scrape(client)) == {"k": 3}


@pytest.mark.sqlite_only
def test_a_write_by_another_process_makes_it_read_again(app, database_url):
    client = app.test_client()
    push_until_remembered(client)
    wipe = (
        "import sys; from periskop_pushgateway.app import create_app; "
        "app = create_app({'DATABASE_URL': sys.argv[1]}); "
        "assert app.extensions['periskop_pushgateway'].store.wipe('')"
    )
    subprocess.run([sys.executable, "-c", wipe, database_url], check=True)
    assert post(client, BODY).get_json()["count_increase"] == 3
    assert counts(scrape(client)) == {"k": 3}


def test_under_gunicorn_a_write_by_one_worker_ends_the_others_verdicts(tmp_path):
    env = {"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true"}
    with gunicorn_on_new_database(tmp_path, env=env) as server:
        for _ in range(5):
            # Each of the 2 workers takes some: it remembers the body, and finds that it
            # changes nothing.
            for _ in range(20):
                requests.post(server.url + "/errors", data=json.dumps(BODY), timeout=10)
            assert requests.delete(server.url + "/-/errors", timeout=10).status_code == 200
            # Whichever worker takes it, the wipe is seen: the state counts again.
            response = requests.post(server.url + "/errors", data=json.dumps(BODY), timeout=10)
            assert response.json()["count_increase"] == 3


@pytest.mark.sqlite_only
def test_a_group_due_a_touch_makes_it_read_again(app, database_url):
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    store.clock = clock = Clock()
    push_until_remembered(client)
    clock.advance(2 * MINUTE)  # the group's last push is kept current to within a minute
    reads = counting_reads(store)
    assert post(client, BODY).get_json() == UNCHANGED
    assert len(reads) == 1
    assert last_push_ns(database_url) == clock.now


@pytest.mark.sqlite_only
def test_a_counter_due_a_touch_makes_it_read_again(app, database_url):
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    store.clock = clock = Clock()
    pushed_at = clock.now
    push_until_remembered(client)
    # Another process keeps the group's last push current; p's counter was written at first.
    clock.advance(4 * MINUTE + MINUTE // 2)
    post(client, push_body(aggregate("other", 1), target_uuid="q"))
    assert post(client, BODY).get_json() == UNCHANGED  # found again: the database changed
    assert counter_pushed_ns(database_url, "k") == pushed_at
    clock.advance(MINUTE // 2 + 10**9)  # past the counter's 5 minutes, within the group's one
    assert post(client, BODY).get_json() == UNCHANGED
    assert counter_pushed_ns(database_url, "k") == clock.now


def last_push_ns(database_url):
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
        return connection.execute("SELECT last_push_ns FROM groups WHERE name = ''").fetchone()[0]


def counter_pushed_ns(database_url, key):
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
        return connection.execute(
            "SELECT pushed_ns FROM process_counters JOIN aggregates"
            " ON aggregates.id = process_counters.aggregate_id WHERE aggregation_key = ?",
            (key,),
        ).fetchone()[0]


@pytest.mark.sqlite_only
def test_a_database_file_gone_before_a_verdict_is_looked_for_is_not_made_anew(app, database_url):
    client = app.test_client()
    assert post(client, BODY).get_json()["count_increase"] == 3
    assert post(client, BODY).get_json() == UNCHANGED  # remembered from now on
    path = database_url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        os.remove(f"{path}{suffix}")
    assert post(client, BODY).status_code == 503
    assert not os.path.exists(path)
