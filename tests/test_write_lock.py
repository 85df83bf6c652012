"""SQLite writers queue in the gateway's write lock, across processes; a body pushed again is
recognized without loading it anew, and a push that changes nothing is answered without
waiting for the lock."""

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy.exc import OperationalError

from periskop_pushgateway.db import WriteLock
from periskop_pushgateway.recent import RecentPushes

from .helpers import aggregate, counts, occurrence, post, push_body, scrape

pytestmark = pytest.mark.sqlite_only


def database_path(database_url):
    return database_url.removeprefix("sqlite:///")


def test_a_push_that_changes_nothing_is_answered_while_another_process_writes(
    make_app, database_url
):
    client = make_app(SQLITE_BUSY_TIMEOUT_MS=200).test_client()
    body = push_body(aggregate("k", 3, [occurrence("boom")]), target_uuid="p")
    assert post(client, body).status_code == 200

    writer = sqlite3.connect(database_path(database_url), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        again = post(client, body)
        assert again.status_code == 200, again.data
        assert again.get_json()["count_increase"] == 0
        # A push with something new must write, so it waits, and gives up after the timeout.
        changed = push_body(aggregate("k", 4), target_uuid="p")
        assert post(client, changed).status_code == 503
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert post(client, changed).status_code == 200
    assert counts(scrape(client)) == {"k": 4}


HOLDER = """
import sys, time
from periskop_pushgateway.db import WriteLock
from periskop_pushgateway.recent import RecentPushes
with WriteLock(sys.argv[1], 1)():
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_write_waits_for_the_lock_held_by_another_process_and_a_crash_releases_it(
    make_app, database_url
):
    client = make_app(SQLITE_BUSY_TIMEOUT_MS=300).test_client()
    lock_path = database_path(database_url) + ".writelock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lock_path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        response = post(client, push_body(aggregate("k", 1)))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert time.monotonic() - started >= 0.3
        holder.send_signal(signal.SIGKILL)  # the kernel releases a dead holder's lock
        holder.wait(10)
        assert post(client, push_body(aggregate("k", 1))).status_code == 200
    finally:
        holder.kill()
        holder.wait(10)
    assert counts(scrape(client)) == {"k": 1}


def _hold(lock, held, release):
    with lock():
        held.set()
        release.wait(30)


def test_a_forked_worker_does_not_share_the_lock_of_its_parent(tmp_path):
    # gunicorn forks its workers from a master that loaded the app: a lock file opened
    # there must not make the workers one holder.
    lock = WriteLock(str(tmp_path / "gateway.db.writelock"), timeout_s=0.2)
    with lock():
        pass  # opened in this process, before the fork
    fork = multiprocessing.get_context("fork")
    held, release = fork.Event(), fork.Event()
    worker = fork.Process(target=_hold, args=(lock, held, release))
    worker.start()
    try:
        assert held.wait(10)
        with pytest.raises(OperationalError, match="database is locked"), lock():
            pass
    finally:
        release.set()
        worker.join(10)
    with lock():
        pass  # free again once the worker let go


def identified(name):
    return {"target_uuid": name, "aggregates": []}


def test_recent_pushes_keep_the_last_bodies_per_group_within_their_bounds():
    recent = RecentPushes(max_entries=2, max_body_bytes=100)
    first, second, third = (RecentPushes.digest("", body) for body in (b"1", b"2", b"3"))
    recent.add(first, identified("a"), 10)
    recent.add(second, identified("b"), 10)
    assert recent.get(first)["target_uuid"] == "a"
    assert recent.get(RecentPushes.digest("batch", b"1")) is None  # same body, other group
    recent.add(first, identified("a"), 10)  # accepted again: now the most recent
    recent.add(third, identified("c"), 10)
    assert recent.get(second) is None
    assert recent.get(first) and recent.get(third)

    recent.add(second, identified("b"), 95)  # past the bytes: the least recent go
    assert recent.get(second) and not recent.get(first) and not recent.get(third)
    recent.add(first, identified("a"), 101)  # larger than all of it: not kept
    assert recent.get(first) is None and recent.get(second)


def test_anonymous_pushes_are_not_kept():
    recent = RecentPushes()
    digest = RecentPushes.digest("", b"{}")
    recent.add(digest, {"target_uuid": None, "aggregates": []}, 2)
    assert recent.get(digest) is None


def test_the_same_anonymous_body_twice_is_two_failures_with_two_occurrences(client):
    # Its occurrence has no uuid: each push of it is a new one, not a repeat to recognize.
    body = push_body(aggregate("nightly", 1, [{"error": {"class": "E", "message": "m"}}]))
    for _ in range(2):
        assert post(client, body).status_code == 200
    [exported] = scrape(client)["aggregated_errors"]
    assert exported["total_count"] == 2
    assert len({o["uuid"] for o in exported["latest_errors"]}) == 2


def test_a_body_pushed_again_is_counted_as_loading_it_anew_would(client):
    body = push_body(aggregate("k", 3, [occurrence("boom")]), target_uuid="p")
    assert post(client, body).get_json()["count_increase"] == 3
    # Resolved in between: the same body again changes nothing, as PROTOCOL.md says.
    assert client.delete("/-/errors/k").status_code == 200
    assert post(client, body).get_json() == {
        "aggregates": 1,
        "new_occurrences": 0,
        "count_increase": 0,
        "dropped_keys": 0,
    }
    assert counts(scrape(client)) == {}
    # After a wipe the group starts afresh: the same body is new there, and stored again.
    assert client.delete("/-/errors").status_code == 200
    assert post(client, body).get_json()["count_increase"] == 3
    assert counts(scrape(client)) == {"k": 3}
