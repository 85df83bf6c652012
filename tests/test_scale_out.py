"""Several gateway instances on one database, as behind a load balancer: counts stay exact
and every instance exports the same."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .helpers import aggregate, counts, occurrence, push_body
from .periskop_server import ScrapeChecker
from .servers import Gunicorn

THREADS = 8
PUSHES = 20


@pytest.fixture
def instances(database_url, tmp_path):
    servers = [
        Gunicorn(database_url, workers=2, log_path=tmp_path / f"instance-{n}.log") for n in range(2)
    ]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()
        server.kill()


def push(url, body, group="nightly"):
    response = requests.post(f"{url}/services/{group}/errors", data=json.dumps(body), timeout=60)
    assert response.status_code == 200, response.text


def export(url, group="nightly"):
    response = requests.get(f"{url}/services/{group}/-/errors", timeout=60)
    assert response.status_code == 200
    return response.json()


def test_two_instances_count_exactly_and_export_the_same(instances):
    urls = [server.url for server in instances]
    checker = ScrapeChecker()
    stop = threading.Event()

    def scrape_both():
        while not stop.is_set():
            for url in urls:
                checker.observe(export(url))

    def client(thread):
        # Each process alternates between the instances, as a load balancer would send it.
        for total in range(1, PUSHES + 1):
            url = urls[(thread + total) % 2]
            body = push_body(
                aggregate("Shared@1", total, [occurrence(f"{thread}-{total}")]),
                aggregate(f"Own@{thread}", total),
                target_uuid=f"process-{thread}",
            )
            push(url, body)
            push(url, push_body(aggregate("anonymous", 1)))

    scraper = threading.Thread(target=scrape_both)
    scraper.start()
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(client, range(THREADS)))
    finally:
        stop.set()
        scraper.join()

    first, second = (export(url) for url in urls)
    assert first == second
    expected = {"Shared@1": THREADS * PUSHES, "anonymous": THREADS * PUSHES}
    expected.update({f"Own@{thread}": PUSHES for thread in range(THREADS)})
    assert counts(first) == expected
    assert checker.scrapes > 2
