"""Housekeeping never makes a request wait: each worker prunes in a thread of its own, one
process of the gateway at a time, in short batches, and keeps storage within its bounds."""

import re
import sqlite3
import statistics
import threading
import time

import pytest
import requests

from periskop_pushgateway.app import create_app

from .helpers import aggregate, counts, post, push_body, scrape
from .pushers import pushing_and_scraping
from .servers import served_by_console_script

BACKLOG = 1_000_000
CAP = 1000
KEYS = [f"Error@{n}" for n in range(50)]


def test_a_worker_prunes_in_a_thread_of_its_own_once_it_serves_pushes(database_url):
    app = create_app(
        {"DATABASE_URL": database_url, "RETENTION_SECONDS": 2, "PRUNE_INTERVAL_SECONDS": 1}
    )
    client = app.test_client()
    started = time.monotonic()
    post(client, push_body(aggregate("old", 1)))  # starts the worker's housekeeping thread
    assert counts(scrape(client)) == {"old": 1}
    # No request comes again: the thread prunes what expires, by itself.
    while counts(scrape(client)):
        assert time.monotonic() - started < 15, "the housekeeping thread never pruned"
        time.sleep(0.2)
    assert time.monotonic() - started > 2
    assert [t for t in threading.enumerate() if t.name == "housekeeping"]


def test_one_process_at_a_time_takes_housekeepings_turn(make_app):
    first, second = (make_app().extensions["periskop_pushgateway"] for _ in range(2))
    with first.store.backend.housekeeping_turn() as taken:
        assert taken
        # Another process's turn (a worker of the same gateway, or on PostgreSQL an instance)
        # is refused while this one holds it; this process's other threads too.
        with second.store.backend.housekeeping_turn() as also:
            assert not also
        assert second.housekeeping.run_if_due() is None
    with second.store.backend.housekeeping_turn() as taken:
        assert taken


def fill_counters(path, group, rows):
    """`rows` counters of processes that pushed long ago, over the group's keys, written
    straight into the SQLite file."""
    with sqlite3.connect(path) as connection:
        group_id = connection.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
        aggregate_ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM aggregates WHERE group_id = ?", (group_id[0],)
            )
        ]
        connection.executemany(
            "INSERT INTO process_counters "
            "(aggregate_id, process_id, group_id, highest_total, pushed_ns) VALUES (?, ?, ?, 1, ?)",
            (
                (aggregate_ids[number % len(aggregate_ids)], number, group_id[0], number)
                for number in range(rows)
            ),
        )


def counter_rows(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM process_counters").fetchone()[0]


@pytest.mark.sqlite_only
def test_no_request_waits_for_housekeeping_draining_a_million_rows(tmp_path, monkeypatch):
    path = tmp_path / "gateway.db"
    database_url = f"sqlite:///{path}"
    seed = create_app({"DATABASE_URL": database_url}).test_client()
    post(seed, push_body(*(aggregate(key, 1) for key in KEYS), target_uuid="seed"), "jobs")
    fill_counters(path, "jobs", BACKLOG)
    monkeypatch.setenv("PERISKOP_PUSHGATEWAY_MAX_COUNTERS_PER_GROUP", str(CAP))

    with (
        served_by_console_script(database_url, tmp_path / "gateway.log") as server,
        pushing_and_scraping(server.url, "jobs") as answers,  # (started, seconds, status)
    ):
        started = time.monotonic()
        # The first push starts each worker's housekeeping; the first tick prunes.
        while counter_rows(path) > CAP + len(answers):
            assert time.monotonic() - started < 300, f"{counter_rows(path)} rows left"
            time.sleep(0.5)
        drained_s = time.monotonic() - started
    latencies = [seconds for _, seconds, _ in answers]
    assert {status for _, _, status in answers} == {200}
    print(
        f"{len(latencies)} requests while {BACKLOG:,} counters drained in {drained_s:.1f} s: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert max(latencies) < 0.5


@pytest.mark.sqlite_only
def test_under_a_flood_of_new_processes_counters_stay_within_the_cap_and_one_interval(
    tmp_path, monkeypatch
):
    """Two clients push 1,000-key states from a new process each time, as fast as they are
    answered: every push adds 1,000 counters. Housekeeping keeps the group's counters within
    its cap (the default) plus what pushes add in one interval (here 5 s, for a short test)."""
    path = tmp_path / "gateway.db"
    interval_s = 5
    monkeypatch.setenv("PERISKOP_PUSHGATEWAY_PRUNE_INTERVAL_SECONDS", str(interval_s))
    cap = 100_000  # MAX_COUNTERS_PER_GROUP's default
    keys = [f"Flood{n}@job" for n in range(1000)]
    accepted, stop = [], threading.Event()

    def client(number):
        session = requests.Session()
        sent = 0
        while not stop.is_set():
            sent += 1
            body = push_body(*(aggregate(key, 1) for key in keys), target_uuid=f"{number}-{sent}")
            response = session.post(f"{url}/services/flood/errors", json=body, timeout=60)
            assert response.status_code == 200, response.text
            accepted.append(time.monotonic())

    samples = []  # (moment, counter rows)
    with served_by_console_script(f"sqlite:///{path}", tmp_path / "gateway.log") as server:
        url = server.url
        clients = [threading.Thread(target=client, args=(n,)) for n in range(2)]
        for thread in clients:
            thread.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 6 * interval_s:
                time.sleep(0.5)
                samples.append((time.monotonic(), counter_rows(path)))
        finally:
            stop.set()
            for thread in clients:
                thread.join()
    # Counters pass the cap by what pushes add from one prune's end to the next one's: an
    # interval, the housekeeping tick, and the next prune's own time (logged).
    longest_prune_s = max(
        float(seconds)
        for seconds in re.findall(
            r"pruned .* seconds=([0-9.]+)", (tmp_path / "gateway.log").read_text()
        )
    )
    window_s = interval_s + 1 + longest_prune_s
    added_per_window = max(
        1000 * sum(1 for moment in accepted if start <= moment < start + window_s)
        for start in accepted
    )
    worst = max(rows for _, rows in samples)
    print(
        f"{len(accepted)} pushes of 1,000 keys in {6 * interval_s} s; counters at most "
        f"{worst:,} (cap {cap:,}, at most {added_per_window:,} added in {window_s:.1f} s, "
        f"the longest prune {longest_prune_s} s)"
    )
    assert len(accepted) * 1000 > 2 * cap  # the flood passed the cap twice over
    assert worst <= cap + added_per_window
