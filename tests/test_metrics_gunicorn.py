"""/metrics under real gunicorn workers: every worker's pushes are counted, whichever worker
answers the scrape, and a reload (SIGHUP) keeps what the old workers counted."""

import json
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .helpers import aggregate, push_body
from .servers import Gunicorn, production_gunicorn
from .test_metrics import sample

ACCEPTED = ("periskop_pushgateway_pushes_total", {"outcome": "accepted"})
INVALID = ("periskop_pushgateway_pushes_total", {"outcome": "invalid"})


def serve_command():
    """`periskop-pushgateway serve`, with no PROMETHEUS_MULTIPROC_DIR of its own."""
    return [
        sys.executable,
        "-m",
        "periskop_pushgateway",
        "serve",
        "--workers",
        "2",
        "--bind",
        "127.0.0.1:{port}",
    ]


@pytest.fixture(params=["gunicorn.conf.py", "serve"])
def gateway(request, database_url, tmp_path, monkeypatch):
    if request.param == "serve":
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        server = Gunicorn(database_url, command=serve_command(), log_path=tmp_path / "log")
    else:
        server = production_gunicorn(database_url, tmp_path)
    with server:
        yield server


def push_from_every_worker(gateway, pushes):
    """Push until every worker has answered some; returns (accepted, invalid) pushes sent."""
    body = json.dumps(push_body(aggregate("k", 1)))
    accepted = invalid = 0
    with ThreadPoolExecutor(4) as pool:
        while len(pids_that_answered(gateway)) < 2 or accepted < pushes:
            statuses = list(
                pool.map(
                    lambda data: requests.post(gateway.url + "/errors", data=data, timeout=30),
                    [body] * 8 + ["{bad"] * 2,
                )
            )
            assert [r.status_code for r in statuses] == [200] * 8 + [400] * 2
            accepted += 8
            invalid += 2
    return accepted, invalid


def pids_that_answered(gateway):
    time.sleep(0.1)  # the access log line follows the response
    return set(re.findall(r"pid=<(\d+)> .*\"POST /errors", gateway.log_path.read_text()))


def metric(gateway, name, labels):
    response = requests.get(gateway.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return sample(response.text, name, **labels)


def assert_every_scrape_shows(gateway, name, labels, value):
    # Each scrape may be answered by either worker: all must add up the same.
    seen = {metric(gateway, name, labels) for _ in range(10)}
    assert seen == {value}


def test_metrics_add_up_every_workers_pushes(gateway):
    accepted, invalid = push_from_every_worker(gateway, pushes=40)
    assert_every_scrape_shows(gateway, *ACCEPTED, accepted)
    assert_every_scrape_shows(gateway, *INVALID, invalid)
    assert_every_scrape_shows(
        gateway, "periskop_pushgateway_push_duration_seconds_count", {}, accepted
    )


def test_a_reload_keeps_what_the_old_workers_counted(gateway):
    before, _ = push_from_every_worker(gateway, pushes=16)
    old_workers = set(gateway.worker_pids())
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while old_workers & set(gateway.worker_pids()) or len(gateway.worker_pids()) < 2:
        assert time.monotonic() < deadline, "the old workers did not exit"
        time.sleep(0.05)
    after, _ = push_from_every_worker(gateway, pushes=16)
    assert_every_scrape_shows(gateway, *ACCEPTED, before + after)
