"""Every per-group bound at its default, filled by hostile pushes: the disk a full group takes
and the memory a worker reaches stay under the documented figures (docs/bounds.md, "Worst
cases").

One group is filled the worst way each bound allows: MAX_KEYS_PER_GROUP keys exported and as
many hidden, each of MAX_KEY_LENGTH 4-byte characters; MAX_OCCURRENCE_BYTES_PER_GROUP of
occurrences in as many rows as the keys can hold; MAX_COUNTERS_PER_GROUP counters. Then real
gunicorn workers serve it: scrapes of the full group, pushes of MAX_BODY_BYTES.
"""

import contextlib
import functools
import json
import os
import random
import re
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from periskop_pushgateway import create_app
from periskop_pushgateway.config import SETTINGS

from .conftest import new_database_url
from .servers import Gunicorn
from .test_database_trouble import fill_filesystem, small_filesystem
from .test_retention import DAY, Clock

MB = 1000**2
# The figures of docs/bounds.md ("Worst cases"); what this test measured is in its closing note.
DOCUMENTED_GROUP_BYTES = {"sqlite": 110 * MB, "postgresql": 150 * MB}
DOCUMENTED_WORKER_PEAK_BYTES = 700 * MB

KEYS = SETTINGS["MAX_KEYS_PER_GROUP"][0]
KEY_LENGTH = SETTINGS["MAX_KEY_LENGTH"][0]
PER_KEY = SETTINGS["OCCURRENCES_PER_KEY"][0]
GROUP_BYTES = SETTINGS["MAX_OCCURRENCE_BYTES_PER_GROUP"][0]
OCCURRENCE_BYTES = SETTINGS["MAX_OCCURRENCE_BYTES"][0]
COUNTERS = SETTINGS["MAX_COUNTERS_PER_GROUP"][0]
BODY_BYTES = SETTINGS["MAX_BODY_BYTES"][0]
BATCH = SETTINGS["MAX_AGGREGATES"][0]


@functools.cache
def long_key(n):
    """A key of MAX_KEY_LENGTH characters, nearly all of 4 bytes in UTF-8, drawn at random so
    that no database can compress it."""
    rng = random.Random(n)
    return f"{n:06d}" + "".join(chr(rng.randrange(0x1F300, 0x1FAF0)) for _ in range(KEY_LENGTH - 6))


def push(client, body, expect=200):
    data = json.dumps(body, ensure_ascii=False).encode()
    assert len(data) <= BODY_BYTES
    response = client.post("/services/hostile/errors", data=data)
    assert response.status_code == expect, response.data[:300]
    return response.get_json()


def small_occurrence(key_index, n):
    # Small occurrences fill the byte bound with the most rows (each row costs its indexes):
    # about 330 bytes each, so that the keys' 100,000 rows take nearly all of it.
    return {"error": {"class": "E", "message": f"{key_index}-{n}".ljust(130, ".")}}


def aggregates_with_occurrences(first, per_key, make_occurrence):
    return [
        {
            "aggregation_key": long_key(index),
            "total_count": 1,
            "latest_errors": [make_occurrence(index, n) for n in range(per_key)],
        }
        for index in range(first, first + BATCH)
    ]


def database_bytes(engine):
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
            return pages * connection.exec_driver_sql("PRAGMA page_size").scalar()
        return connection.execute(
            text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        ).scalar()


@pytest.fixture(scope="module")
def full_group(tmp_path_factory):
    """The group 'hostile' filled to every bound: (database url, app, store)."""
    database_url = new_database_url(tmp_path_factory.mktemp("worst-case"))
    clock = Clock()
    app = create_app({"DATABASE_URL": database_url, "SQLITE_SYNCHRONOUS": "OFF"})
    store = app.extensions["periskop_pushgateway"].store
    store.clock = clock
    app.extensions["periskop_pushgateway"].housekeeping.in_background = False  # prunes below
    client = app.test_client()

    def push_keys(first, per_key=PER_KEY):
        aggregates = aggregates_with_occurrences(first, per_key, small_occurrence)
        return push(client, {"aggregated_errors": aggregates})

    # KEYS keys with PER_KEY occurrences each, pushed anonymously; past retention they hide.
    for first in range(0, KEYS, BATCH):
        push_keys(first)
    clock.advance(8 * DAY)
    # A push, then the housekeeping's next turn: every key leaves the export. (Pruned before
    # a push, the group would go as abandoned.)
    push(client, {"aggregated_errors": []})
    app.extensions["periskop_pushgateway"].housekeeping.run_if_due()
    with store.engine.connect() as connection:
        hidden = connection.execute(text("SELECT count(*) FROM aggregates WHERE hidden")).scalar()
    assert hidden == KEYS
    # As many again, exported; keys past the cap are dropped.
    for first in range(KEYS, 2 * KEYS, BATCH):
        push_keys(first)
    assert push_keys(2 * KEYS, per_key=1)["dropped_keys"] == BATCH
    # Counters: processes pushing the exported keys, past the cap, then pruned back to it.
    for process in range(COUNTERS // BATCH + 5):
        first = KEYS + (process % (KEYS // BATCH)) * BATCH
        keys = [
            {"aggregation_key": long_key(i), "total_count": 1} for i in range(first, first + BATCH)
        ]
        push(client, {"target_uuid": f"p{process}-" * 40, "aggregated_errors": keys})
    store.prune()
    return database_url, app, store


def test_a_full_group_stays_under_the_documented_disk_figure(full_group):
    _url, _app, store = full_group
    with store.engine.connect() as connection:
        rows = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("aggregates", "occurrences", "process_counters")
        }
        stored = connection.execute(
            text("SELECT occurrence_bytes FROM groups WHERE name = 'hostile'")
        ).scalar()
    assert rows["aggregates"] == 2 * KEYS
    assert rows["process_counters"] == COUNTERS
    assert rows["occurrences"] == 2 * KEYS * PER_KEY  # small ones: every row the keys hold
    assert stored <= GROUP_BYTES
    size = database_bytes(store.engine)
    print(f"full group: {size / MB:.1f} MB, rows {rows}, occurrence bytes {stored / MB:.1f} MB")
    assert size <= DOCUMENTED_GROUP_BYTES[store.engine.dialect.name]


@pytest.mark.sqlite_only
def test_a_full_group_is_deleted_on_a_full_disk_with_the_default_reserve(full_group, tmp_path):
    """docs/bounds.md, "Beside the database": the default disk reserve covers the delete of a
    full group (its log: 59 MB) once pushes have filled the disk."""
    database_url, _app, store = full_group
    source = database_url.removeprefix("sqlite:///")
    with small_filesystem(tmp_path / "fs", size="256m") as folder:
        # A copy: the group stays whole for the tests below.
        copy = sqlite3.connect(folder / "gateway.db")
        with contextlib.closing(sqlite3.connect(source)) as original:
            original.backup(copy)
        copy.execute("PRAGMA journal_mode=WAL")
        copy.close()
        app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'gateway.db'}", "ADMIN_OPEN": True})
        app.extensions["periskop_pushgateway"].housekeeping.in_background = False
        reserve = SETTINGS["SQLITE_DISK_RESERVE_BYTES"][0]
        assert os.stat(folder / "gateway.db.reserve").st_blocks * 512 == reserve
        fill_filesystem(folder / "filler")
        client = app.test_client()
        assert client.post("/services/other/errors", data="{}").status_code == 503
        assert client.delete("/services/hostile").status_code == 200, "the reserve fell short"
        assert client.get("/services/hostile/-/errors").get_json()["aggregated_errors"] == []
        with sqlite3.connect(folder / "gateway.db") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        app.extensions["periskop_pushgateway"].store.close()


# One thread per worker is the default; more (gthread workers) hold several requests at once.
@pytest.mark.parametrize("threads", [1, 4])
def test_workers_serving_a_full_group_stay_under_the_documented_memory(
    full_group, tmp_path, threads
):
    database_url, app, store = full_group
    client = app.test_client()
    # The exported keys' occurrences replaced by large ones: the byte bound all in the export.
    large = "x" * OCCURRENCE_BYTES
    per_push = BODY_BYTES // (OCCURRENCE_BYTES + 5 * KEY_LENGTH) - 1
    pushed = 0
    while pushed < 2 * GROUP_BYTES // OCCURRENCE_BYTES:
        aggregates = [
            {
                "aggregation_key": long_key(KEYS + (pushed + i) % KEYS),
                "total_count": 0,
                "latest_errors": [{"error": {"class": "E", "message": f"{pushed + i}{large}"}}],
            }
            for i in range(per_push)
        ]
        push(client, {"aggregated_errors": aggregates})
        pushed += per_push
    store.engine.dispose()
    gateway = Gunicorn(
        database_url,
        command=[
            sys.executable,
            "-m",
            "gunicorn",
            "wsgi:app",
            "--workers",
            "2",
            "--threads",
            str(threads),
            "--bind",
            "127.0.0.1:{port}",
        ],  # fmt: skip
        log_path=tmp_path / "gunicorn.log",
        env={"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true"},
    )
    with gateway:
        # Scrapes at once, plain and gzip: each worker renders the 50 MB export once.
        with ThreadPoolExecutor(8) as pool:
            scrapes = list(pool.map(lambda n: scrape_hostile(gateway, n % 2), range(8)))
        export_sizes = [size for size, _ in scrapes]
        export = scrapes[0][1]
        assert len(export["aggregated_errors"]) == KEYS
        occurrence_bytes = sum(
            len(json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode())
            for a in export["aggregated_errors"]
            for o in a["latest_errors"]
        )
        assert GROUP_BYTES * 0.8 < occurrence_bytes <= GROUP_BYTES
        # Pushes of the largest body, many at once (each worker has 4 threads): the most
        # keys, and the most objects JSON can make of it (an ignored field holding empty
        # objects: 64 bytes of memory each for 3 of body).
        keys = json.dumps(
            {
                "aggregated_errors": [
                    {"aggregation_key": long_key(KEYS + i), "total_count": 0} for i in range(BATCH)
                ]
            },
            ensure_ascii=False,
        ).encode()
        objects = b'{"aggregated_errors":[],"ignored":[' + b"{}," * (BODY_BYTES // 3 - 20) + b"{}]}"
        assert len(keys) <= BODY_BYTES and len(objects) <= BODY_BYTES

        def push_body_bytes(body):
            url = gateway.url + "/services/hostile/errors"
            return requests.post(url, data=body, timeout=300).status_code

        with ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(push_body_bytes, [objects] * 8 + [keys] * 2))
        assert statuses == [200] * 10
        peaks = [worker_peak_bytes(pid) for pid in gateway.worker_pids()]
    peaks_mb = [round(p / MB) for p in peaks]
    print(f"{threads} thread(s): export {export_sizes[0] / MB:.1f} MB; worker peaks {peaks_mb} MB")
    assert max(peaks) <= DOCUMENTED_WORKER_PEAK_BYTES


def scrape_hostile(gateway, gzip_accepted):
    headers = {"Accept-Encoding": "gzip" if gzip_accepted else "identity"}
    url = gateway.url + "/services/hostile/-/errors"
    response = requests.get(url, headers=headers, timeout=300)
    assert response.status_code == 200
    return len(response.content), response.json()


def worker_peak_bytes(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024
