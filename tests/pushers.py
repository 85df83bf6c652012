"""Client processes pushing without pause, each remembering what the gateway acknowledged, so a
test can say exactly which counts the export may show after a crash or a restart."""

import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests

from .helpers import aggregate, counts, push_body

ANONYMOUS_KEY = "anonymous"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
STACKTRACE = [f'  File "job.py", line {line}, in step_{line}' for line in range(20)]


@contextlib.contextmanager
def pushing_and_scraping(url, group, clients=2):
    """`clients` threads running push_and_scrape while inside; yields their answers."""
    answers, stop = [], threading.Event()
    threads = [
        threading.Thread(target=push_and_scrape, args=(url, group, n, stop, answers))
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def push_and_scrape(url, group, number, stop, answers):
    """Until stop is set: three pushes from a new process each (a key of 50), then a scrape
    of the group; (started, seconds, status) of each request appended to answers."""
    session = requests.Session()
    sent = 0
    while not stop.is_set():
        sent += 1
        started = time.monotonic()
        if sent % 4:
            body = push_body(aggregate(f"Error@{sent % 50}", 1), target_uuid=f"{number}-{sent}")
            response = session.post(f"{url}/services/{group}/errors", json=body, timeout=30)
        else:
            response = session.get(f"{url}/services/{group}/-/errors", timeout=30)
        answers.append((started, time.monotonic() - started, response.status_code))


class Pusher(threading.Thread):
    """One client process: its own target_uuid and key, cumulative totals 1, 2, 3, ... (one
    more error before every push, whatever became of the last one), and an anonymous push that
    adds 1 after each.

    Outcomes: acknowledged (2xx); not stored (refused before sending, or an answer other than
    2xx: the gateway stores nothing of a push it rejects); unknown (the connection broke after
    the request was sent, or a proxy answered 502: it may or may not have been committed).
    """

    def __init__(self, url, name, stop):
        super().__init__(name=f"pusher-{name}", daemon=True)
        self.url = url
        self.key = f"cumulative-{name}"
        self.target_uuid = str(uuid.uuid4())
        self.stop = stop
        self.total = 0  # the last total sent
        self.acknowledged = 0  # the last total answered 2xx
        self.unknown = 0  # the highest total whose fate is unknown
        self.anonymous_acknowledged = 0
        self.anonymous_unknown = 0
        self.failures = []  # what every push not acknowledged got instead

    def run(self):
        while not self.stop.is_set():
            self.push_cumulative()
            self.push_anonymous()

    def finish(self, attempts=50):
        """Push until one is acknowledged, so the final count is known exactly."""
        for _ in range(attempts):
            if self.push_cumulative() == "acknowledged":
                return
        raise AssertionError(f"{self.name}: no push acknowledged: {self.failures[-3:]}")

    def push_cumulative(self):
        self.total += 1
        occurrence = {
            "error": {
                "class": "JobError",
                "message": f"run {self.total}",
                "stacktrace": STACKTRACE,
            },
            "uuid": occurrence_uuid(self.key, self.total),
            "timestamp": (EPOCH + timedelta(seconds=self.total)).isoformat(),
        }
        body = push_body(
            aggregate(self.key, self.total, [occurrence]), target_uuid=self.target_uuid
        )
        outcome = self.send(body)
        if outcome == "acknowledged":
            self.acknowledged = self.total
        elif outcome == "unknown":
            self.unknown = self.total
        return outcome

    def push_anonymous(self):
        outcome = self.send(push_body(aggregate(ANONYMOUS_KEY, 1)))
        if outcome == "acknowledged":
            self.anonymous_acknowledged += 1
        elif outcome == "unknown":
            self.anonymous_unknown += 1

    def send(self, body):
        try:
            response = requests.post(self.url + "/errors", data=json.dumps(body), timeout=30)
        except requests.RequestException as error:
            # Refused: never sent. Anything else (reset, a response cut off by the kill,
            # a timeout) came after sending: it may or may not have been committed.
            self.failures.append(repr(error))
            return "not stored" if "Connection refused" in str(error) else "unknown"
        if 200 <= response.status_code < 300:
            return "acknowledged"
        self.failures.append(f"{response.status_code} {response.text.strip()}")
        return "unknown" if response.status_code == 502 else "not stored"

    def expected_count(self):
        """(lowest, highest) count the export may show for this client's key: its last
        committed total, at least the last acknowledged, at most the last one of unknown fate."""
        return self.acknowledged, max(self.acknowledged, self.unknown)


def occurrence_uuid(key, total):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{total}"))


def check_export(export, pushers, refused_but_stored=0):
    """Every acknowledged push is in the export; nothing beyond what was sent.
    refused_but_stored: how many anonymous pushes answered 503 may have been stored all the
    same (a commit whose flush, or check after it, failed)."""
    exported = counts(export)
    for pusher in pushers:
        lowest, highest = pusher.expected_count()
        if lowest == 0:
            continue
        assert lowest <= exported.get(pusher.key, 0) <= highest, (pusher.key, lowest, highest)
        occurrences = next(
            a["latest_errors"]
            for a in export["aggregated_errors"]
            if a["aggregation_key"] == pusher.key
        )
        assert occurrence_uuid(pusher.key, lowest) in {o["uuid"] for o in occurrences}
    acknowledged = sum(p.anonymous_acknowledged for p in pushers)
    unknown = sum(p.anonymous_unknown for p in pushers)
    assert (
        acknowledged
        <= exported.get(ANONYMOUS_KEY, 0)
        <= acknowledged + unknown + refused_but_stored
    ), (exported.get(ANONYMOUS_KEY, 0), acknowledged, unknown)


def run_pushers(url, count):
    """Start `count` pushers; returns (pushers, stop event)."""
    stop = threading.Event()
    pushers = [Pusher(url, name, stop) for name in range(count)]
    for pusher in pushers:
        pusher.start()
    return pushers, stop


def stop_pushers(pushers, stop):
    stop.set()
    for pusher in pushers:
        pusher.join(60)
        assert not pusher.is_alive(), f"{pusher.name} is stuck"


def wait_for_acknowledged_pushes(pushers, more_than, timeout=20):
    """Let the clients push until each has had `more_than` more acknowledged."""
    start = [p.acknowledged for p in pushers]
    deadline = time.monotonic() + timeout
    while any(p.acknowledged - s < more_than for p, s in zip(pushers, start, strict=True)):
        assert time.monotonic() < deadline, [p.failures[-3:] for p in pushers]
        time.sleep(0.05)
