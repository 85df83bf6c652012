"""kill -9 of every gunicorn process while clients push: what was acknowledged survives."""

import sqlite3
import time

import pytest
import requests

from .helpers import counts
from .pushers import check_export, run_pushers, stop_pushers, wait_for_acknowledged_pushes
from .servers import production_gunicorn

CLIENTS = 6
CRASHES = 3


def integrity(database_url):
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def scrape(url):
    response = requests.get(url + "/-/errors", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.sqlite_only
def test_acknowledged_pushes_survive_kill_9_of_master_and_workers(database_url, tmp_path):
    gateway = production_gunicorn(database_url, tmp_path)
    with gateway:
        pushers, stop = run_pushers(gateway.url, CLIENTS)
        try:
            wait_for_acknowledged_pushes(pushers, more_than=1)
            target_uuid = scrape(gateway.url)["target_uuid"]
            for _crash in range(CRASHES):
                wait_for_acknowledged_pushes(pushers, more_than=5)
                gateway.kill()
                # Whatever was acknowledged before the kill, at least, must be there.
                floor = {p.key: p.acknowledged for p in pushers}
                assert integrity(database_url) == "ok"

                started = time.monotonic()
                gateway.start()
                assert time.monotonic() - started < 10
                export = scrape(gateway.url)
                assert export["target_uuid"] == target_uuid
                exported = counts(export)
                assert all(exported.get(key, 0) >= count for key, count in floor.items())
            wait_for_acknowledged_pushes(pushers, more_than=5)
        finally:
            stop_pushers(pushers, stop)
        for pusher in pushers:
            pusher.finish()
        check_export(scrape(gateway.url), pushers)
        # The clients did lose pushes to the crashes: the bounds above were put to work.
        assert sum(len(p.failures) for p in pushers) >= CRASHES
    assert integrity(database_url) == "ok"
