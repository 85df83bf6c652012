"""SQLite writers queue in the gateway's write lock, across processes, and a push that changes
nothing is answered without waiting for the lock."""

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy.exc import OperationalError

from periskop_pushgateway.storage.sqlite.write_lock import WriteLock

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


def test_a_push_that_arrived_out_of_order_is_answered_while_another_process_writes(
    make_app, database_url
):
    """Threads of one process pushed 6 and 5; the 5 arrives last. This worker has seen the 6,
    so it tries the read transaction first, which finds the 5 changes nothing."""
    client = make_app(SQLITE_BUSY_TIMEOUT_MS=200).test_client()
    occurrences = [occurrence("first", timestamp="2026-01-01T00:00:01Z")]
    earlier = push_body(aggregate("k", 5, occurrences), target_uuid="p")
    occurrences.append(occurrence("second", timestamp="2026-01-01T00:00:02Z"))
    assert (
        post(client, push_body(aggregate("k", 6, occurrences), target_uuid="p")).status_code == 200
    )

    writer = sqlite3.connect(database_path(database_url), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        late = post(client, earlier)
        assert late.status_code == 200, late.data
        assert late.get_json()["stale_keys"] == 1
        assert late.get_json()["count_increase"] == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert counts(scrape(client)) == {"k": 6}


HOLDER = """
import sys, time
from periskop_pushgateway.storage.sqlite.write_lock import WriteLock
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
