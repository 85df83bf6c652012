"""The periskop-client package as a user runs it in a threaded program: one process, many
threads sharing one collector, each reporting an error and then pushing the collector's whole
state. The pushes of that one target_uuid reach the gateway out of order (a thread snapshots
the state, another reports and pushes a higher count first, two workers or two instances
answer them in either order), so only docs/protocol.md's rule 2 counts them exactly: per
(group, target_uuid, key) the highest total_count seen, adding only what exceeds it.

The client takes no lock. In CPython its `total_count += 1` runs without a thread switch and
a push reads each count once, so every pushed count is one the collector really held. One race
remains: threads reporting a key's first error at the same moment can each create its
aggregate, the last replacing the others and dropping what was counted on them. Either way,
what the collector holds at the end is what the user sees counted, and the highest count pushed
(the last push after the last report): that final state is the truth the export must equal.
"""

import json
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import periskop_client.exporter
import pytest
import requests
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter

from .helpers import counts
from .nginx import Nginx, nginx_available
from .periskop_server import ScrapeChecker
from .servers import Gunicorn, production_gunicorn, served_by_console_script

# 8 threads pushing at once keep several pushes of the one target_uuid in flight at every
# moment, so out-of-order arrivals happen on every run, while 200 pushes stay quick.
THREADS = 8
REPORTS_PER_THREAD = 25
# Three exception types: three aggregation keys counted side by side.
ERRORS = ((ValueError, "bad value"), (KeyError, "missing"), (TimeoutError, "too slow"))
GROUP = "threaded-job"


class RecordingRequests:
    """The `requests` module as periskop_client.exporter sees it, noting the status of each
    push and the highest total_count pushed per key. The client ignores the answer (a rejected
    push is lost without a word), so the test must look at it to tell a lost push from a
    miscount. It sends exactly what the client asked; the timeout only keeps a hung gateway
    from hanging the suite."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = Counter()
        self.highest_pushed = Counter()

    def post(self, url, data=None, **kwargs):
        response = requests.post(url, data, timeout=60, **kwargs)
        pushed = json.loads(data)["aggregated_errors"]
        with self.lock:
            self.statuses[response.status_code] += 1
            for aggregate in pushed:
                key = aggregate["aggregation_key"]
                self.highest_pushed[key] = max(self.highest_pushed[key], aggregate["total_count"])
        return response


@pytest.fixture
def recorder(monkeypatch):
    recording = RecordingRequests()
    monkeypatch.setattr(periskop_client.exporter, "requests", recording)
    return recording


def fail(error_type, message):
    raise error_type(message)  # a new exception each time, as a program raises them


def run_threads_sharing_a_collector(push_urls):
    """One process: THREADS threads, one collector; after each report, a push of its whole
    state. Pushes alternate between `push_urls`, as a load balancer would spread them."""
    collector = ExceptionCollector()
    exporter = ExceptionExporter(collector)
    start = threading.Barrier(THREADS)

    def thread(n):
        start.wait(timeout=30)  # all at once: the most pushes in flight together
        for report in range(REPORTS_PER_THREAD):
            try:
                fail(*ERRORS[(n + report) % len(ERRORS)])
            except Exception as caught:  # noqa: BLE001 - the client takes any exception
                collector.report(caught)
            exporter.push_to_gateway(push_urls[(n + report) % len(push_urls)])

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(thread, range(THREADS)))
    return collector


def export(url):
    response = requests.get(f"{url}/services/{GROUP}/-/errors", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def check_counted_exactly(push_urls, scrape_urls, recorder):
    """Run the threads while a Periskop server scrapes every scrape URL; then the export
    equals the collector's final counts exactly and no scrape ever saw a count go down."""
    checker = ScrapeChecker()
    stop = threading.Event()

    def periskop_server():
        while not stop.is_set():
            for url in scrape_urls:
                checker.observe(export(url))

    with ThreadPoolExecutor(1) as scraping:
        scraper = scraping.submit(periskop_server)
        try:
            collector = run_threads_sharing_a_collector(
                [f"{url}/services/{GROUP}" for url in push_urls]
            )
        finally:
            stop.set()
        scraper.result()  # a count that went down, or a failed scrape, fails the test here

    pushes = THREADS * REPORTS_PER_THREAD
    # Every push was accepted: a lost push would be the gateway's fault, not a miscount.
    assert recorder.statuses == {200: pushes}
    truth = {
        aggregate.aggregation_key: aggregate.total_count
        for aggregate in collector.get_aggregated_exceptions().aggregated_errors
    }
    assert len(truth) == len(ERRORS)
    exports = [export(url) for url in scrape_urls]
    for exported in exports:
        checker.observe(exported)
        assert counts(exported) == truth, (
            f"exported {counts(exported)}, truth (the collector's final counts) {truth}, "
            f"highest count pushed {dict(recorder.highest_pushed)}, reports made {pushes}"
        )
    # Several instances on one database export the same.
    assert all(exported == exports[0] for exported in exports)
    assert checker.scrapes > 2


def test_threads_of_one_process_sharing_a_collector_are_counted_exactly_through_serve(
    database_url, tmp_path, recorder
):
    with served_by_console_script(database_url, tmp_path / "serve.log", workers=3) as server:
        check_counted_exactly([server.url], [server.url], recorder)


# CI installs nginx (.ci/run): there, a missing nginx is a failure, not a skip.
@pytest.mark.skipif(
    not nginx_available() and not os.environ.get("CI"), reason="nginx is not installed"
)
def test_threads_of_one_process_sharing_a_collector_are_counted_exactly_through_nginx(
    database_url, tmp_path, recorder
):
    # The shipped deployment, as tests/test_nginx.py runs it.
    gateway = production_gunicorn(database_url, tmp_path, socket_activated=True)
    with gateway, Nginx(tmp_path, gateway.port) as nginx:
        check_counted_exactly([nginx.url], [nginx.url], recorder)


def test_threads_of_one_process_pushing_to_two_instances_on_one_database_are_counted_exactly(
    database_url, tmp_path, recorder
):
    # Two gateways on one database, as tests/test_scale_out.py runs them; a Periskop server
    # scrapes both, and they must agree.
    instances = [
        Gunicorn(database_url, workers=2, log_path=tmp_path / f"instance-{n}.log") for n in range(2)
    ]
    with instances[0], instances[1]:
        urls = [instance.url for instance in instances]
        check_counted_exactly(urls, urls, recorder)
