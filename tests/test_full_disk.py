"""A disk the gateway filled itself is survivable from inside: admin deletes and pruning free
room with the disk reserve (storage/sqlite/disk_reserve.py), the gateway says it is not ready
while writes fail for want of disk, and it takes pushes again once there is room, without a
restart."""

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from periskop_pushgateway.config import SETTINGS

from .helpers import aggregate, counts, occurrence, post, push_body, scrape
from .servers import production_gunicorn
from .test_database_trouble import fill_filesystem, small_filesystem

pytestmark = pytest.mark.sqlite_only

# The default, not the suite's (conftest.py).
RESERVE = SETTINGS["SQLITE_DISK_RESERVE_BYTES"][0]
RESERVE_ENV = {"PERISKOP_PUSHGATEWAY_SQLITE_DISK_RESERVE_BYTES": str(RESERVE)}
# Most pushes go to BIG, the group an operator deletes to free room.
BIG, SMALL = "big", "small"


def room_push(number):
    """A push of one new key with one occurrence of about 60 KB: new pages on every push."""
    key = f"k{number}"
    return push_body(aggregate(key, 1, [occurrence(f"{number}-" + "x" * 60_000)]), target_uuid=key)


def group_of(number):
    return SMALL if number % 4 == 0 else BIG


def fill_the_disk(push):
    """Push until a push gets 503 (the disk is full); push(group, body) -> status code.
    Returns the keys acknowledged in each group."""
    acknowledged = {BIG: set(), SMALL: set()}
    for number in range(10_000):
        status = push(group_of(number), room_push(number))
        if status == 503:
            assert number > 20, "full before the test began"
            return acknowledged
        assert status == 200
        acknowledged[group_of(number)].add(f"k{number}")
    raise AssertionError("the disk never filled")


def integrity(database):
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()


def not_ready_for_a_full_disk(response):
    body = response.content if isinstance(response, requests.Response) else response.data
    return response.status_code == 503 and b"writes fail: the disk is full" in body


@pytest.fixture
def full_gateway(make_app, tmp_path):
    """(app, client, database, acknowledged keys per group) of a gateway on a small
    filesystem that its own pushes filled."""
    with small_filesystem(tmp_path / "fs", size="16m") as folder:
        database = folder / "gateway.db"
        app = make_app(DATABASE_URL=f"sqlite:///{database}", SQLITE_DISK_RESERVE_BYTES=RESERVE)
        client = app.test_client()
        acknowledged = fill_the_disk(lambda group, body: post(client, body, group).status_code)
        yield app, client, database, acknowledged


def test_an_admin_delete_frees_room_on_a_disk_the_gateway_filled(full_gateway, caplog):
    app, client, database, acknowledged = full_gateway
    response = client.get("/-/ready")
    assert not_ready_for_a_full_disk(response), response.data
    reserve = os.stat(f"{database}.reserve").st_blocks
    assert reserve > 0
    assert post(client, room_push(10_001), SMALL).status_code == 503
    assert os.stat(f"{database}.reserve").st_blocks == reserve  # pushes never take it

    with caplog.at_level(logging.INFO, logger="periskop_pushgateway"):
        response = client.delete(f"/services/{BIG}")
        assert response.status_code == 200, response.data
        assert "released the disk reserve" in caplog.text
        assert client.get("/-/ready").status_code == 200
        # The room the delete freed in the database file takes pushes again.
        for number in range(10_001, 10_011):
            assert post(client, room_push(number), SMALL).status_code == 200
            acknowledged[SMALL].add(f"k{number}")
        # The housekeeping thread's tick makes the reserve again from the room left.
        app.extensions["periskop_pushgateway"].housekeeping.run_if_due()
        assert "disk reserve" in caplog.text and "holds" in caplog.text
    assert os.path.getsize(f"{database}.reserve") > 0

    assert counts(scrape(client, BIG)) == {}
    assert counts(scrape(client, SMALL)) == dict.fromkeys(acknowledged[SMALL], 1)
    assert integrity(database) == ("ok",)


def test_after_a_restart_on_the_full_disk_an_admin_delete_frees_room(full_gateway, make_app):
    app, _client, database, acknowledged = full_gateway
    app.extensions["periskop_pushgateway"].store.close()

    restarted = make_app(
        DATABASE_URL=f"sqlite:///{database}", SQLITE_DISK_RESERVE_BYTES=RESERVE
    ).test_client()
    assert not_ready_for_a_full_disk(restarted.get("/-/ready"))
    assert restarted.delete(f"/services/{BIG}").status_code == 200
    assert post(restarted, room_push(10_001), BIG).status_code == 200
    assert counts(scrape(restarted, BIG)) == {"k10001": 1}
    assert counts(scrape(restarted, SMALL)) == dict.fromkeys(acknowledged[SMALL], 1)
    assert integrity(database) == ("ok",)


def test_the_prune_command_frees_room_on_a_full_disk(full_gateway):
    app, client, database, acknowledged = full_gateway
    app.extensions["periskop_pushgateway"].store.close()
    time.sleep(1.1)  # every aggregate past a retention of 1 s

    pruned = subprocess.run(
        [str(Path(sys.executable).parent / "periskop-pushgateway"), "prune"],
        env={
            **os.environ,
            "PERISKOP_PUSHGATEWAY_DATABASE_URL": f"sqlite:///{database}",
            "PERISKOP_PUSHGATEWAY_RETENTION_SECONDS": "1",
            **RESERVE_ENV,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0, pruned.stderr
    assert "released the disk reserve" in pruned.stderr
    done = dict(item.split("=") for item in pruned.stdout.split())
    assert int(done["expired_aggregates"]) == sum(len(keys) for keys in acknowledged.values())
    assert int(done["deleted_groups"]) == 2

    assert client.get("/-/ready").status_code == 200
    assert post(client, room_push(10_001), SMALL).status_code == 200
    assert counts(scrape(client, SMALL)) == {"k10001": 1}
    assert integrity(database) == ("ok",)


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def every_worker_answers(gateway, path, predicate, times=12):
    """Whether `times` requests in a row, spread by gunicorn over its workers, all do."""
    return all(predicate(requests.get(gateway.url + path, timeout=10)) for _ in range(times))


def test_gunicorn_workers_tell_a_full_disk_and_recover_after_an_admin_delete(tmp_path):
    with small_filesystem(tmp_path / "fs", size="16m") as folder:
        database = folder / "gateway.db"
        gateway = production_gunicorn(
            f"sqlite:///{database}",
            tmp_path,
            env={"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true", **RESERVE_ENV},
        )
        with gateway:

            def push(group, body):
                url = f"{gateway.url}/services/{group}/errors"
                return requests.post(url, data=json.dumps(body), timeout=30).status_code

            acknowledged = fill_the_disk(push)
            wait_until(
                lambda: every_worker_answers(gateway, "/-/ready", not_ready_for_a_full_disk),
                timeout=5,
            )
            assert push(SMALL, room_push(10_001)) == 503

            response = requests.delete(f"{gateway.url}/services/{BIG}", timeout=30)
            assert response.status_code == 200, response.text
            wait_until(
                lambda: every_worker_answers(gateway, "/-/ready", lambda r: r.status_code == 200),
                timeout=5,
            )
            for number in range(10_001, 10_011):
                assert push(SMALL, room_push(number)) == 200
                acknowledged[SMALL].add(f"k{number}")
            export = requests.get(f"{gateway.url}/services/{SMALL}/-/errors", timeout=10).json()
            assert counts(export) == dict.fromkeys(acknowledged[SMALL], 1)
            # Each worker's housekeeping thread makes the reserve again from the room left.
            wait_until(lambda: os.path.getsize(f"{database}.reserve") > 0, timeout=5)
        log = (tmp_path / "gunicorn.log").read_text()
        assert "released the disk reserve" in log
        assert integrity(database) == ("ok",)


def test_gunicorn_workers_tell_a_disk_filled_from_outside_and_recover_once_freed(tmp_path):
    with small_filesystem(tmp_path / "fs", size="16m") as folder:
        gateway = production_gunicorn(
            f"sqlite:///{folder / 'gateway.db'}", tmp_path, env=RESERVE_ENV
        )
        with gateway:
            assert push_ok(gateway, 1)
            assert every_worker_answers(gateway, "/-/ready", lambda r: r.status_code == 200)
            filler = folder / "filler"
            fill_filesystem(filler)
            assert not push_ok(gateway, 2)
            assert every_worker_answers(gateway, "/-/ready", not_ready_for_a_full_disk)

            filler.unlink()
            wait_until(
                lambda: every_worker_answers(gateway, "/-/ready", lambda r: r.status_code == 200),
                timeout=5,
            )
            assert push_ok(gateway, 2)


def push_ok(gateway, number):
    body = json.dumps(room_push(number))
    return requests.post(f"{gateway.url}/errors", data=body, timeout=30).status_code == 200
