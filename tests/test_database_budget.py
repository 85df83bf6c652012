"""MAX_DATABASE_BYTES: the database and its WAL stay within the budget, by evicting the oldest
occurrences of the groups holding the most (their counts kept), off the request path, and by
refusing with 507 what cannot be made room for (keys and counters)."""

import json
import os
import sqlite3
import statistics
import threading
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from periskop_pushgateway import metrics
from periskop_pushgateway.storage.budget import EVICT_ABOVE, EVICT_DOWN_TO, fair_level

from .helpers import aggregate, counts, occurrence, post, push_body, scrape
from .pushers import pushing_and_scraping
from .servers import production_gunicorn

pytestmark = pytest.mark.sqlite_only

MiB = 1024 * 1024


def used_bytes(database_url):
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
        [(pages, free, size)] = connection.execute(
            "SELECT * FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
        ).fetchall()
    return (pages - free) * size


def bulky_push(key, target_uuid, occurrences=10, size=60_000, keys=1):
    """A push of `occurrences` new occurrences of about `size` bytes each for each of `keys`
    keys (key, key-1, ...), each counted once."""
    return push_body(
        *(
            aggregate(
                f"{key}-{k}" if k else key,
                1,
                [occurrence(f"{n}-" + os.urandom(size // 2).hex()) for n in range(occurrences)],
            )
            for k in range(keys)
        ),
        target_uuid=target_uuid,
    )


def stored_occurrences(client, group):
    return {
        a["aggregation_key"]: len(a["latest_errors"])
        for a in scrape(client, group)["aggregated_errors"]
    }


def gauge(metrics_text, name):
    [value] = [
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name
    ]
    return value


def test_fair_level_takes_from_the_largest_first():
    assert fair_level([100, 50, 10], 10) == 90
    assert fair_level([100, 50, 10], 60) == 45  # 55 + 5
    assert fair_level([100, 50, 10], 160) == 0
    assert fair_level([100, 50, 10], 500) == 0
    assert fair_level([10, 10], 4) == 8
    assert fair_level([], 5) == 0


def budget_settings(budget_mib=24, wal_mib=8):
    return {
        "MAX_DATABASE_BYTES": budget_mib * MiB,
        "SQLITE_WAL_LIMIT_BYTES": wal_mib * MiB,
        "MAX_BODY_BYTES": 4 * MiB,
    }


def test_housekeeping_evicts_the_largest_groups_oldest_occurrences_keeping_counts(
    make_app, database_url
):
    app = make_app(**budget_settings())
    client = app.test_client()
    limit = 16 * MiB
    # "big" holds most, "middle" some, "small" a little: only those above the fair level lose.
    for n in range(19):
        assert post(client, bulky_push(f"big-{n}", f"b{n}"), "big").status_code == 200
    for n in range(6):
        assert post(client, bulky_push(f"middle-{n}", f"m{n}"), "middle").status_code == 200
    assert post(client, bulky_push("small", "s", occurrences=3), "small").status_code == 200
    assert used_bytes(database_url) > limit * EVICT_ABOVE
    small_before = stored_occurrences(client, "small")
    middle_before = stored_occurrences(client, "middle")
    big_counts = counts(scrape(client, "big"))

    app.extensions["periskop_pushgateway"].housekeeping.run_if_due()

    assert used_bytes(database_url) <= limit * EVICT_DOWN_TO
    # Below the fair level: untouched.
    assert stored_occurrences(client, "small") == small_before
    assert stored_occurrences(client, "middle") == middle_before
    big = stored_occurrences(client, "big")
    assert big["big-0"] == 0 and big["big-18"] == 10  # the oldest went first
    assert counts(scrape(client, "big")) == big_counts  # counts stay
    report = {a["aggregation_key"]: a for a in scrape(client)["aggregated_errors"]}[
        "DatabaseBudget@periskop-pushgateway"
    ]
    message = report["latest_errors"][0]["error"]["message"]
    assert "evicted the" in message and "group 'big'" in message and "'small'" not in message
    assert report["total_count"] > 0
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'periskop_pushgateway_pruned_rows_total{kind="budget_occurrences"}' in metrics
    assert gauge(metrics, "periskop_pushgateway_database_limit_bytes") == limit
    assert gauge(metrics, "periskop_pushgateway_database_used_bytes") <= limit
    status = client.get("/-/status").get_json()["database"]
    assert status["budget_bytes"] == 24 * MiB and status["used_bytes"] <= limit


def test_what_cannot_be_evicted_is_refused_with_507_and_nothing_stored(make_app, database_url):
    client = make_app(**budget_settings(budget_mib=16, wal_mib=8)).test_client()
    limit = 8 * MiB
    long_key = "k" * 1000
    refused = None
    for n in range(400):
        # 500 new keys of 1 KiB a push, no occurrences: nothing to evict for room.
        body = push_body(
            *(aggregate(f"{long_key}-{n}-{i}", 1) for i in range(500)), target_uuid=f"p{n}"
        )
        response = post(client, body, f"g{n % 40}")
        if response.status_code != 200:
            refused = (n, response)
            break
    assert refused is not None, "the budget was never reached"
    n, response = refused
    assert response.status_code == 507, response.data
    assert response.headers["Retry-After"] == "60"
    assert "MAX_DATABASE_BYTES" in response.get_json()["description"]
    assert used_bytes(database_url) <= limit
    # Nothing of the refused push was stored.
    assert f"{long_key}-{n}-0" not in counts(scrape(client, f"g{n % 40}"))
    # A push that grows nothing (a higher count of a stored key) still goes.
    again = push_body(aggregate(f"{long_key}-0-0", 5), target_uuid="p0")
    assert post(client, again, "g0").status_code == 200
    assert counts(scrape(client, "g0"))[f"{long_key}-0-0"] == 5
    reports = counts(scrape(client))
    assert reports["DatabaseFull@periskop-pushgateway"] >= 1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'periskop_pushgateway_pushes_total{outcome="database_full"}' in metrics


def test_a_budget_that_leaves_no_room_beside_the_wal_is_refused_at_start(make_app):
    with pytest.raises(ValueError, match="MAX_DATABASE_BYTES must exceed"):
        make_app(MAX_DATABASE_BYTES=64 * MiB, SQLITE_WAL_LIMIT_BYTES=60 * MiB)


def test_a_hostile_fill_stays_within_the_budget_under_gunicorn(tmp_path, database_url, capsys):
    """Two clients push 2 MiB of new occurrences at a time, a new group every two pushes,
    through gunicorn with 2 workers and their housekeeping threads: the database file and its
    WAL stay within a 64 MiB budget throughout; every acknowledged push is counted."""
    budget, wal_limit = 64 * MiB, 16 * MiB
    path = database_url.removeprefix("sqlite:///")
    acknowledged, refused, errors = {}, [0], []
    samples = []
    stop = threading.Event()

    def pusher(client_id, base):
        session = requests.Session()
        n = 0
        while not stop.is_set():
            group = f"c{client_id}-g{n // 2}"
            body = json.dumps(bulky_push("k", str(uuid.uuid4()), occurrences=9, keys=4))
            try:
                response = session.post(f"{base}/services/{group}/errors", data=body, timeout=30)
            except requests.RequestException as error:
                errors.append(repr(error))
                continue
            if response.status_code == 200:
                acknowledged[group] = acknowledged.get(group, 0) + 1
            elif response.status_code == 507:
                refused[0] += 1
            else:
                errors.append(f"{response.status_code} {response.text[:200]}")
            n += 1

    def sampler():
        while not stop.is_set():
            sizes = [os.path.getsize(f) if os.path.exists(f) else 0 for f in (path, f"{path}-wal")]
            samples.append((sizes[0], sizes[1], used_bytes(database_url)))
            time.sleep(0.2)

    env = {
        "PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES": str(budget),
        "PERISKOP_PUSHGATEWAY_SQLITE_WAL_LIMIT_BYTES": str(wal_limit),
    }
    with production_gunicorn(database_url, tmp_path, env=env) as server:
        threads = [threading.Thread(target=pusher, args=(i, server.url)) for i in range(2)]
        threads.append(threading.Thread(target=sampler))
        for thread in threads:
            thread.start()
        time.sleep(20)
        stop.set()
        for thread in threads:
            thread.join()
        exports = {
            group: requests.get(f"{server.url}/services/{group}/-/errors", timeout=30).json()
            for group in acknowledged
        }
        log = (tmp_path / "gunicorn.log").read_text()

    pushed = sum(acknowledged.values())
    largest_file = max(database for database, _, _ in samples)
    largest_used = max(used for _, _, used in samples)
    largest_sum = max(database + wal for database, wal, _ in samples)
    with capsys.disabled():
        print(
            f"\n{pushed} pushes acknowledged ({pushed * 2} MiB), {refused[0]} refused; "
            f"largest: database file {largest_file / MiB:.1f} MiB, pages in use "
            f"{largest_used / MiB:.1f} MiB, file + WAL {largest_sum / MiB:.1f} MiB "
            f"(budget {budget / MiB:.0f} MiB)"
        )
    assert not errors, errors[:5]
    assert pushed * 2 * MiB > 3 * budget, "the fill did not pass the budget several times over"
    assert "evicted the" in log
    assert largest_used <= budget - wal_limit
    assert largest_sum <= budget
    for group, count in acknowledged.items():
        totals = {a["total_count"] for a in exports[group]["aggregated_errors"]}
        assert totals == {count}, group


def fill_occurrences(path, groups, per_group, body_bytes=200):
    """`per_group` occurrences of about body_bytes each in each of `groups` new groups of 100
    keys, written straight into the SQLite file, as months of pushes would leave them."""
    body = json.dumps({"error": {"class": "E", "message": "x" * body_bytes}})
    with sqlite3.connect(path) as connection:
        for g in range(groups):
            group_id = connection.execute(
                "INSERT INTO groups (name, target_uuid, revision, created_ns, last_push_ns,"
                " occurrence_bytes) VALUES (?, ?, 0, 1, ?, ?) RETURNING id",
                (f"old{g}", str(uuid.uuid4()), time.time_ns(), per_group * len(body)),
            ).fetchone()[0]
            aggregate_ids = [
                connection.execute(
                    "INSERT INTO aggregates (group_id, aggregation_key, key_digest, total_count,"
                    " severity, created_ns, last_seen_ns, hidden)"
                    " VALUES (?, ?, ?, 1, 'error', 1, ?, 0) RETURNING id",
                    (group_id, f"E{k}", os.urandom(16), time.time_ns()),
                ).fetchone()[0]
                for k in range(100)
            ]
            connection.executemany(
                "INSERT INTO occurrences (aggregate_id, uuid, timestamp_ns, body, body_bytes)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    (aggregate_ids[n % 100], str(uuid.UUID(int=n)), n, body, len(body))
                    for n in range(per_group)
                ),
            )


def test_no_request_waits_for_an_eviction_backlog(tmp_path, database_url, capsys):
    """A database far past a lowered budget (300,000 occurrences, about 90 MiB, against a
    limit of 40 MiB): housekeeping evicts about 200,000 of them while two clients push and
    scrape, and no request waits 0.5 s for it."""
    path = database_url.removeprefix("sqlite:///")
    seed = production_gunicorn(database_url, tmp_path)
    with seed:
        requests.post(f"{seed.url}/services/jobs/errors", json=push_body(aggregate("k", 1)))
    fill_occurrences(path, groups=10, per_group=30_000)
    before = used_bytes(database_url)
    budget, wal_limit = 48 * MiB, 8 * MiB
    limit = budget - wal_limit
    assert before > 2 * limit
    env = {
        "PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES": str(budget),
        "PERISKOP_PUSHGATEWAY_SQLITE_WAL_LIMIT_BYTES": str(wal_limit),
    }
    with (
        production_gunicorn(database_url, tmp_path, env=env) as server,
        pushing_and_scraping(server.url, "jobs") as answers,  # (started, seconds, status)
    ):
        started = time.monotonic()
        while used_bytes(database_url) > limit * EVICT_DOWN_TO:
            assert time.monotonic() - started < 300, "housekeeping never got within budget"
            time.sleep(0.5)
        evicted_at = time.monotonic()
        time.sleep(2)  # pushes after it are answered 200 again
    latencies = [seconds for _, seconds, _ in answers]
    statuses = [status for _, _, status in answers]
    with capsys.disabled():
        print(
            f"\n{len(answers)} requests while {before / MiB:.0f} MiB went down to "
            f"{used_bytes(database_url) / MiB:.0f} MiB in {evicted_at - started:.1f} s: median "
            f"{statistics.median(latencies) * 1000:.0f} ms, slowest "
            f"{max(latencies) * 1000:.0f} ms, {statuses.count(507)} pushes refused with 507"
        )
    assert set(statuses) <= {200, 507}
    assert {status for at, _, status in answers if at > evicted_at + 0.5} == {200}
    assert max(latencies) < 0.5


def writes_and_commits():
    """(writes, commits) SQLite's group commit counted in this process so far."""
    [family] = metrics.WRITES_PER_COMMIT.collect()
    values = {sample.name: sample.value for sample in family.samples}
    return (
        values["periskop_pushgateway_writes_per_commit_sum"],
        values["periskop_pushgateway_writes_per_commit_count"],
    )


def test_refusals_in_a_shared_commit_leave_the_other_pushes_whole(make_app, database_url):
    """Threads of one worker push at once, so their writes share transactions (group
    commit): a push refused for the budget rolls back its own writes alone."""
    client_app = make_app(**budget_settings(budget_mib=16, wal_mib=8))
    acknowledged, refused, lock = {}, [0], threading.Lock()

    def pusher(number):
        client = client_app.test_client()
        for n in range(60):
            key = f"t{number}-{n}-" + "k" * 900
            body = push_body(
                *(aggregate(f"{key}-{i}", 1) for i in range(100)), target_uuid=f"{number}-{n}"
            )
            response = post(client, body, f"g{number}")
            with lock:
                if response.status_code == 200:
                    acknowledged[f"g{number}"] = acknowledged.get(f"g{number}", 0) + 100
                else:
                    assert response.status_code == 507, response.data
                    refused[0] += 1

    before = writes_and_commits()
    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused[0], "the budget was never reached"
    writes, commits = (a - b for a, b in zip(writes_and_commits(), before, strict=True))
    assert writes > commits, "no two pushes shared a commit"
    assert used_bytes(database_url) <= 8 * MiB
    client = client_app.test_client()
    for group, keys in acknowledged.items():
        exported = counts(scrape(client, group))
        assert len(exported) == keys and set(exported.values()) == {1}
