"""The gateway under real gunicorn processes sharing one SQLite file."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from periskop_pushgateway.cli import serve
from periskop_pushgateway.server.gunicorn_settings import default_workers

from .helpers import aggregate, counts, occurrence, push_body
from .periskop_server import ScrapeChecker
from .servers import Gunicorn, served_by_console_script

THREADS = 8
PUSHES_PER_THREAD = 25
KEYS = ("ValueError@a", "KeyError@b", "TimeoutError@c")


@pytest.fixture
def gateway(database_url, tmp_path):
    server = Gunicorn(database_url, workers=2, log_path=tmp_path / "gunicorn.log")
    yield server.start()
    server.stop()
    server.kill()


def push(url, body, group=None):
    path = f"/services/{group}/errors" if group else "/errors"
    response = requests.post(url + path, data=json.dumps(body), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def scrape(url, group=None):
    path = f"/services/{group}/-/errors" if group else "/-/errors"
    response = requests.get(url + path, timeout=30)
    assert response.status_code == 200, response.text
    return response


def push_cumulative_state(url, thread):
    """One client process: its cumulative count grows by one per push, on every key."""
    for total in range(1, PUSHES_PER_THREAD + 1):
        body = push_body(
            *(aggregate(key, total, [occurrence(f"{thread}-{total}")]) for key in KEYS),
            target_uuid=f"process-{thread}",
        )
        push(url, body)
        # An anonymous "one more failure" push on the side, through the other worker too.
        push(url, push_body(aggregate("anonymous", 1)))


def test_concurrent_pushes_from_many_clients_lose_no_increment(gateway):
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda thread: push_cumulative_state(gateway.url, thread), range(THREADS)))
    expected = THREADS * PUSHES_PER_THREAD
    exported = scrape(gateway.url).json()
    assert counts(exported) == {**{key: expected for key in KEYS}, "anonymous": expected}
    assert all(
        len(a["latest_errors"]) == 10
        for a in exported["aggregated_errors"]
        if a["aggregation_key"] in KEYS
    )


def test_export_is_identical_after_sigterm_and_restart(gateway):
    push(gateway.url, push_body(aggregate("k", 4, [occurrence()]), target_uuid="p"))
    push(gateway.url, push_body(aggregate("k", 2)), group="nightly")
    before = scrape(gateway.url).content, scrape(gateway.url, "nightly").content

    gateway.stop()
    assert gateway.process.returncode == 0
    gateway.start()
    assert (scrape(gateway.url).content, scrape(gateway.url, "nightly").content) == before
    # The counters survived too: the same cumulative state adds nothing.
    push(gateway.url, push_body(aggregate("k", 4, [occurrence()]), target_uuid="p"))
    assert counts(scrape(gateway.url).json()) == {"k": 4}


def test_counts_never_decrease_for_a_standing_target_uuid(gateway):
    """The Periskop server's rule, checked over every scrape taken while clients push,
    restart (new uuid), push out of order, and the gateway itself restarts."""
    checker = ScrapeChecker()
    stop = threading.Event()

    def scraper():
        while not stop.is_set():
            try:
                checker.observe(scrape(gateway.url).json())
            except requests.ConnectionError:
                pass  # the gateway is restarting

    def client_runs(run):
        # A process that pushes 1..5, "restarts" with a fresh uuid, and one whose pushes of
        # 1 and 2 arrive after its 3.
        for total in range(1, 6):
            push(gateway.url, push_body(aggregate("k", total), target_uuid=f"run-{run}"))
        for total in (3, 1, 2):
            push(gateway.url, push_body(aggregate("late", total), target_uuid=f"late-{run}"))

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for run in range(4):
            client_runs(run)
            gateway.stop()
            gateway.start()
    finally:
        stop.set()
        thread.join()
    final = scrape(gateway.url).json()
    checker.observe(final)
    assert checker.scrapes > 10
    # Per run: 3; the 1 and the 2 that arrive after it add nothing.
    assert counts(final) == {"k": 20, "late": 4 * 3}


def test_console_script_serves_the_gateway(database_url, tmp_path):
    with served_by_console_script(database_url, tmp_path / "serve.log") as server:
        push(server.url, push_body(aggregate("k", 2)))
        assert counts(scrape(server.url).json()) == {"k": 2}


def test_serve_without_options_listens_on_port_7878_with_the_default_settings():
    # What the README's one-line run command relies on; the other tests give --bind.
    context = serve.make_context("serve", [])
    defaults = {
        "bind": ("0.0.0.0:7878",),
        "workers": default_workers(),
        "threads": 1,
        "timeout": 30,
    }
    assert context.params == defaults


def test_every_worker_shows_a_push_as_soon_as_it_is_acknowledged(gateway):
    """Each worker keeps its rendered export until a push changes the group: the change must
    be seen by the next scrape, whichever worker serves it."""
    for total in range(1, 41):
        push(gateway.url, push_body(aggregate("k", total), target_uuid="p"))
        assert counts(scrape(gateway.url).json()) == {"k": total}
