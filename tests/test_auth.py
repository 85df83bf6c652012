"""Optional Basic auth, per role, with password hashes only; tested with the real client."""

import base64
import logging
import re
import subprocess
import sys
import threading
import time

import pytest
import requests
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter
from werkzeug.security import check_password_hash, generate_password_hash

from periskop_pushgateway.web.throttle import CredentialRecords, failure_key

from .helpers import counts
from .servers import Gunicorn

PUSH_HASH = generate_password_hash("push-secret")
ADMIN_HASH = generate_password_hash("admin-secret")
SCRAPE_HASH = generate_password_hash("scrape-secret")


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


BODY = '{"aggregated_errors": [{"aggregation_key": "k", "total_count": 1}]}'


@pytest.fixture
def protected(make_app):
    return make_app(PUSH_USERNAME="jobs", PUSH_PASSWORD_HASH=PUSH_HASH).test_client()


def test_without_credentials_configured_everything_is_open(client):
    assert client.post("/errors", data=BODY).status_code == 200
    assert client.get("/-/errors").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("jobs", "wrong"),
        basic("other", "push-secret"),
        {"Authorization": "Bearer push-secret"},
        {"Authorization": "Basic !!!not-base64"},
    ],
)
def test_pushes_without_the_right_credentials_get_401_and_store_nothing(protected, headers):
    response = protected.post("/errors", data=BODY, headers=headers)
    assert response.status_code == 401
    assert re.match(r'Basic realm="?periskop-pushgateway"?', response.headers["WWW-Authenticate"])
    assert response.get_json()["code"] == 401
    assert protected.get("/-/errors").get_json()["aggregated_errors"] == []


def test_pushes_with_the_right_credentials_are_stored(protected):
    for _ in range(3):  # the second and third reuse the remembered verdict
        assert (
            protected.post("/errors", data=BODY, headers=basic("jobs", "push-secret")).status_code
            == 200
        )
    assert (
        protected.post(
            "/services/g/errors", data=BODY, headers=basic("jobs", "push-secret")
        ).status_code
        == 200
    )
    assert protected.post("/errors", data=BODY, headers=basic("jobs", "nope")).status_code == 401


def test_export_and_health_stay_open_unless_scrape_credentials_are_set(protected, make_app):
    assert protected.get("/-/errors").status_code == 200
    assert protected.get("/-/health").status_code == 200
    closed = make_app(SCRAPE_USERNAME="periskop", SCRAPE_PASSWORD_HASH=SCRAPE_HASH).test_client()
    assert closed.get("/-/errors").status_code == 401
    assert closed.get("/-/health").status_code == 401
    assert closed.get("/-/errors", headers=basic("periskop", "scrape-secret")).status_code == 200
    assert closed.post("/errors", data=BODY).status_code == 200  # pushing is another role


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"PUSH_USERNAME": "jobs", "PUSH_PASSWORD_HASH": "plain-text"}, "not a password hash"),
        ({"PUSH_USERNAME": "jobs"}, "go together"),
        ({"ADMIN_PASSWORD_HASH": ADMIN_HASH}, "go together"),
    ],
)
def test_plaintext_or_half_configured_credentials_refuse_to_start(make_app, settings, message):
    with pytest.raises(ValueError, match=message):
        make_app(**settings)


def test_real_client_passes_credentials_in_the_gateway_address(database_url, tmp_path):
    server = Gunicorn(
        database_url,
        log_path=tmp_path / "gunicorn.log",
        env={
            "PERISKOP_PUSHGATEWAY_PUSH_USERNAME": "jobs",
            "PERISKOP_PUSHGATEWAY_PUSH_PASSWORD_HASH": PUSH_HASH,
        },
    )
    with server:
        collector = ExceptionCollector()
        try:
            raise RuntimeError("nightly job failed")
        except RuntimeError as error:
            collector.report(error)
        exporter = ExceptionExporter(collector)
        authority = f"jobs:push-secret@127.0.0.1:{server.port}"
        exporter.push_to_gateway(f"http://{authority}/services/nightly")
        exporter.push_to_gateway(f"http://jobs:wrong@127.0.0.1:{server.port}/services/nightly")
        exporter.push_to_gateway(server.url + "/services/nightly")  # no credentials: refused
        export = requests.get(server.url + "/services/nightly/-/errors", timeout=10).json()
        assert list(counts(export).values()) == [1]
        refused = requests.post(server.url + "/errors", data=BODY, timeout=10)
        assert refused.status_code == 401


def test_hash_password_command_prints_a_hash_the_gateway_accepts(make_app):
    result = subprocess.run(
        [sys.executable, "-m", "periskop_pushgateway", "hash-password"],
        input="s3cret\ns3cret\n",
        capture_output=True,
        text=True,
        check=True,
    )
    password_hash = result.stdout.strip().splitlines()[-1]
    assert check_password_hash(password_hash, "s3cret")
    client = make_app(ADMIN_USERNAME="ops", ADMIN_PASSWORD_HASH=password_hash).test_client()
    assert client.post("/errors", data=BODY).status_code == 200


def test_only_the_accepted_pair_skips_the_slow_hash(protected, monkeypatch):
    """Once jobs:push-secret was accepted it is answered from memory; a wrong user name with
    the right password is checked against the hash like any wrong guess (no fast path that
    tells an attacker the password is right), and refused."""
    from periskop_pushgateway.web import auth

    checked = []

    def counting_check(password_hash, password):
        checked.append(password)
        return check_password_hash(password_hash, password)

    monkeypatch.setattr(auth, "check_password_hash", counting_check)
    for _ in range(3):
        assert (
            protected.post("/errors", data=BODY, headers=basic("jobs", "push-secret")).status_code
            == 200
        )
    assert len(checked) == 1
    for user, password in (("intruder", "push-secret"), ("jobs", "guess"), ("job", "spush-secret")):
        assert (
            protected.post("/errors", data=BODY, headers=basic(user, password)).status_code == 401
        )
    assert len(checked) == 4


# Repeated failed credentials of one user name from one address are refused with 429 before
# they cost a hash check; failures are counted for the whole gateway, per user name and client
# address, and the whole gateway makes at most AUTH_CHECKS_PER_SECOND checks a second.


@pytest.fixture
def guarded(make_app):
    """Push and scrape credentials, and 3 failed checks per user name and address per minute
    (with the budget of checks a second out of the way)."""
    return make_app(
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH=PUSH_HASH,
        SCRAPE_USERNAME="periskop",
        SCRAPE_PASSWORD_HASH=SCRAPE_HASH,
        AUTH_FAILURES_PER_MINUTE=3,
        AUTH_CHECKS_PER_SECOND=100,
    ).test_client()


def test_repeated_failures_from_one_address_get_429_without_a_hash_check(guarded):
    scraper = basic("periskop", "scrape-secret")
    assert guarded.get("/-/errors", headers=scraper).status_code == 200  # now remembered
    for _ in range(3):
        assert guarded.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 401

    refused = guarded.post("/errors", data=BODY, headers=basic("jobs", "guess"))
    assert refused.status_code == 429
    assert 59 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["code"] == 429
    assert refused.get_json()["message"] == "Too Many Requests"
    assert "failed" in refused.get_json()["description"]
    # The right push credentials were never accepted: they are not checked either, and are
    # refused alike (a check would have let them in).
    right = guarded.post("/errors", data=BODY, headers=basic("jobs", "push-secret"))
    assert right.status_code == 429
    # Credentials accepted before cost no hash check, so a client behind the same address
    # keeps working while someone else there guesses.
    assert guarded.get("/-/errors", headers=scraper).status_code == 200
    # A request without credentials costs nothing either: it is told what is missing.
    assert guarded.post("/errors", data=BODY).status_code == 401
    assert guarded.get("/-/errors", headers=scraper).get_json()["aggregated_errors"] == []


def test_failures_from_one_address_leave_other_addresses_alone(guarded):
    for _ in range(4):
        guarded.post("/errors", data=BODY, headers=basic("jobs", "guess"))
    other = {"REMOTE_ADDR": "10.0.0.2"}
    wrong = guarded.post("/errors", data=BODY, headers=basic("jobs", "guess"), environ_base=other)
    assert wrong.status_code == 401
    right = guarded.post(
        "/errors", data=BODY, headers=basic("jobs", "push-secret"), environ_base=other
    )
    assert right.status_code == 200
    assert guarded.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 429


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_failures_age_out_of_the_window_and_retry_after_says_when(tmp_path):
    clock = FakeClock()
    records = CredentialRecords(
        tmp_path / "records", max_failures=3, checks_per_second=2, window_seconds=60, clock=clock
    )
    guesser, other = failure_key("jobs", "192.0.2.1"), failure_key("jobs", "192.0.2.2")
    for offset in (0, 10, 20):
        clock.now = 1000.0 + offset
        assert records.seconds_to_wait(guesser) == 0
        records.record_failure(guesser)
    clock.now = 1025.0
    assert records.seconds_to_wait(guesser) == 35  # the failure at 0 s frees a slot at 60
    assert records.seconds_to_wait(other) == 0
    assert records.seconds_to_wait(failure_key("ops", "192.0.2.1")) == 0  # another user name
    clock.now = 1059.5
    assert records.seconds_to_wait(guesser) == 1
    clock.now = 1060.0
    assert records.seconds_to_wait(guesser) == 0  # one slot free again
    records.record_failure(guesser)
    assert records.seconds_to_wait(guesser) == 10  # now the failure at 10 s is the oldest
    clock.now = 1200.0
    assert records.seconds_to_wait(guesser) == 0
    records.record_failure(other)
    assert records.failures_kept() == 1  # failures that aged out are forgotten


def test_the_failures_kept_stay_within_their_bound(tmp_path):
    clock = FakeClock()
    records = CredentialRecords(
        tmp_path / "records",
        max_failures=2,
        checks_per_second=2,
        max_failures_kept=200,
        clock=clock,
    )
    for number in range(250):
        clock.now += 0.01
        records.record_failure(failure_key("jobs", f"10.0.{number // 256}.{number % 256}"))
        records.record_failure(failure_key("jobs", f"10.0.{number // 256}.{number % 256}"))
        assert records.failures_kept() <= 200
    assert records.failures_kept() == 200
    assert records.seconds_to_wait(failure_key("jobs", "10.0.0.249")) > 0  # the newest are kept
    assert records.seconds_to_wait(failure_key("jobs", "10.0.0.0")) == 0  # the oldest dropped


def test_user_names_and_addresses_do_not_run_together():
    assert failure_key("ab", "c") != failure_key("a", "bc")
    assert failure_key("jobs", "10.0.0.1") != failure_key("jobs", "10.0.0.10")
    assert len(failure_key("x" * 100_000, "y" * 100_000)) == 16


def test_the_budget_of_checks_refuses_past_it_and_refills(tmp_path):
    clock = FakeClock()
    records = CredentialRecords(
        tmp_path / "records", max_failures=3, checks_per_second=2, clock=clock
    )
    key = failure_key("jobs", "192.0.2.1")
    # 5 seconds' worth at once after a quiet spell, then none until the bucket refills.
    assert [records.admit(key, []).wait for _ in range(10)] == [0] * 10
    refused = records.admit(key, [])
    assert (refused.wait, refused.reason) == (1, "budget")
    clock.now += 0.5  # one check's worth
    assert records.admit(key, []).wait == 0
    assert records.admit(key, []).wait == 1
    assert records.admit(key, [], checks=2).wait == 1  # two at once: also a second away
    clock.now += 1.0
    assert records.admit(key, [], checks=2).wait == 0
    clock.now += 3600
    assert [records.admit(key, []).wait for _ in range(11)] == [0] * 10 + [1]  # no more saved


def test_accepted_digests_let_in_without_failures_or_budget(tmp_path):
    clock = FakeClock()
    records = CredentialRecords(
        tmp_path / "records", max_failures=1, checks_per_second=1, clock=clock
    )
    key = failure_key("jobs", "192.0.2.1")
    records.record_failure(key)
    assert records.admit(key, [b"right"]).reason == "failures"
    records.record_accepted(b"right")
    assert records.admit(key, [b"wrong", b"right"]).accepted == b"right"
    assert records.admit(failure_key("jobs", "192.0.2.9"), [b"right"]).accepted == b"right"


def test_a_damaged_shared_file_leaves_each_worker_its_own_records(tmp_path, caplog):
    """Failing to the worker's own memory: no request fails, no one is locked out, and the
    bounds still hold per worker."""
    clock = FakeClock()
    path = tmp_path / "records"
    records = CredentialRecords(path, max_failures=2, checks_per_second=1, clock=clock)
    key = failure_key("jobs", "192.0.2.1")
    records.record_failure(key)
    assert records.shared
    for file in tmp_path.iterdir():
        file.write_bytes(b"not a database " * 1000)
    with caplog.at_level(logging.WARNING, logger="periskop_pushgateway"):
        assert records.seconds_to_wait(key) == 0  # the shared record is gone with the file
    assert not records.shared
    assert "keeps its own" in caplog.text
    records.record_failure(key)
    records.record_failure(key)
    assert records.admit(key, []).reason == "failures"
    assert records.admit(failure_key("ops", "192.0.2.1"), []).wait == 0


def test_a_damaged_shared_file_fails_no_request(make_app):
    app = make_app(PUSH_USERNAME="jobs", PUSH_PASSWORD_HASH=PUSH_HASH, AUTH_FAILURES_PER_MINUTE=2)
    client = app.test_client()
    path = app.extensions["periskop_pushgateway_credentials"].path
    assert client.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 401
    for file in path.parent.iterdir():
        file.write_bytes(b"not a database " * 1000)
    assert client.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 401
    assert client.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 401
    assert client.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 429
    assert (
        client.post("/errors", data=BODY, headers=basic("jobs", "push-secret")).status_code == 429
    )
    right = basic("jobs", "push-secret")
    other = {"REMOTE_ADDR": "10.0.0.2"}
    assert client.post("/errors", data=BODY, headers=right, environ_base=other).status_code == 200


def test_a_guessed_user_name_leaves_other_users_of_the_address_alone(guarded):
    """Behind one NAT address, someone guessing the push user's password does not lock out the
    scraper, even one never accepted before."""
    for _ in range(3):
        assert guarded.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 401
    assert guarded.post("/errors", data=BODY, headers=basic("jobs", "guess")).status_code == 429
    scraper = basic("periskop", "scrape-secret")
    assert guarded.get("/-/errors", headers=scraper).status_code == 200
    for _ in range(3):
        assert guarded.get("/-/errors", headers=basic("intruder", "guess")).status_code == 401
    assert guarded.get("/-/errors", headers=basic("intruder", "guess")).status_code == 429
    assert guarded.get("/-/errors", headers=scraper).status_code == 200


def test_the_admin_credentials_open_what_the_scrape_ones_do(make_app):
    client = make_app(
        SCRAPE_USERNAME="periskop",
        SCRAPE_PASSWORD_HASH=SCRAPE_HASH,
        ADMIN_USERNAME="ops",
        ADMIN_PASSWORD_HASH=ADMIN_HASH,
        AUTH_CHECKS_PER_SECOND=100,
    ).test_client()
    assert client.post("/errors", data=BODY).status_code == 200  # pushing stays open
    admin, scraper = basic("ops", "admin-secret"), basic("periskop", "scrape-secret")
    readable = ("/", "/-/keys", "/-/static/pages.css", "/-/errors", "/-/health", "/metrics")
    for path in readable:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=basic("ops", "scrape-secret")).status_code == 401, path
        assert client.get(path, headers=scraper).status_code == 200, path
        assert client.get(path, headers=admin).status_code == 200, path
    # The admin pages and API stay the admin's alone.
    for path in ("/-/wipe", "/-/status"):
        assert client.get(path, headers=scraper).status_code == 401, path
        assert client.get(path, headers=admin).status_code == 200, path


def _worker_pids(log_path, forwarded_for):
    """The gunicorn workers whose access log lines name this forwarded client."""
    lines = log_path.read_text().splitlines()
    return {
        re.search(r"pid=<?(\d+)", line).group(1)
        for line in lines
        if f"fwd={forwarded_for} " in line
    }


def _metric(url, name):
    text = requests.get(url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def guarded_behind_a_proxy(database_url, log_path, push_hash, checks_per_second):
    """gunicorn, 2 workers, the push user "jobs" with push_hash, trusting one proxy's
    X-Forwarded-For (as behind nginx: the address is forwarded)."""
    return Gunicorn(
        database_url,
        workers=2,
        log_path=log_path,
        env={
            "PERISKOP_PUSHGATEWAY_PUSH_USERNAME": "jobs",
            "PERISKOP_PUSHGATEWAY_PUSH_PASSWORD_HASH": push_hash,
            "PERISKOP_PUSHGATEWAY_PROXY_HOPS": "1",
            "PERISKOP_PUSHGATEWAY_AUTH_CHECKS_PER_SECOND": str(checks_per_second),
        },
    )


def test_gunicorn_workers_share_the_failures_of_a_guessing_address(database_url, tmp_path):
    """Both workers answer the guesses, and between them check 10 (the setting's default):
    the failures are the gateway's, not each worker's. (The budget of checks a second is
    raised out of the way.)"""
    log_path = tmp_path / "gunicorn.log"
    server = guarded_behind_a_proxy(database_url, log_path, PUSH_HASH, checks_per_second=100)
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    with server:
        statuses = []
        # At least 30 guesses, and on until both workers have answered some (which of them
        # takes a connection is the kernel's choice).
        for attempt in range(300):
            if attempt >= 30 and len(_worker_pids(log_path, "203.0.113.7")) == 2:
                break
            response = requests.post(
                server.url + "/errors",
                data=BODY,
                headers={**guesser, **basic("jobs", f"guess-{attempt}")},
                timeout=10,
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["code"] == 429
        assert statuses == [401] * 10 + [429] * (len(statuses) - 10)
        assert len(_worker_pids(log_path, "203.0.113.7")) == 2
        for _ in range(5):
            pushed = requests.post(
                server.url + "/errors",
                data=BODY,
                headers={"X-Forwarded-For": "198.51.100.2", **basic("jobs", "push-secret")},
                timeout=10,
            )
            assert pushed.status_code == 200


def test_guessing_from_many_addresses_stays_within_the_gateways_checks(database_url, tmp_path):
    """1,500 forwarded addresses guess the push user's password while that user pushes: the
    gateway's 2 workers check at most 2 a second between them (after a burst of 10), and the
    user's pushes, accepted once before by one worker, all pass both without a check. The
    hash is a fast one here, so that what bounds the checks is the budget, not the CPU."""
    log_path = tmp_path / "gunicorn.log"
    fast_hash = generate_password_hash("push-secret", method="pbkdf2:sha256:1000")
    server = guarded_behind_a_proxy(database_url, log_path, fast_hash, checks_per_second=2)
    user = {"X-Forwarded-For": "198.51.100.2", **basic("jobs", "push-secret")}
    attack_seconds = 5
    guesses: list[int] = []
    pushes: list[int] = []

    def guess(first):
        session = requests.Session()
        number = first
        while time.monotonic() < stop_at:
            address = f"10.{number % 1500 // 250}.{number % 250}.7"
            guessed = {"X-Forwarded-For": address, **basic("jobs", f"guess-{number}")}
            response = session.post(server.url + "/errors", data=BODY, headers=guessed, timeout=30)
            guesses.append(response.status_code)
            number += 4

    def push():
        while time.monotonic() < stop_at:
            response = requests.post(server.url + "/errors", data=BODY, headers=user, timeout=30)
            pushes.append(response.status_code)
            time.sleep(0.05)

    with server:
        assert requests.post(server.url + "/errors", data=BODY, headers=user).status_code == 200
        started = time.monotonic()
        stop_at = started + attack_seconds
        threads = [threading.Thread(target=guess, args=(first,)) for first in range(4)]
        threads.append(threading.Thread(target=push))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        checks = _metric(
            server.url, 'periskop_pushgateway_password_checks_total{outcome="refused"}'
        )
        budget_refusals = _metric(
            server.url, 'periskop_pushgateway_credentials_throttled_total{reason="budget"}'
        )

    assert len(pushes) >= 10
    assert set(pushes) == {200}
    assert len(_worker_pids(log_path, "198.51.100.2")) == 2
    assert set(guesses) == {401, 429}
    # Each 401 answered to a guess is one hash check; the bucket holds 10 and refills by 2 a
    # second (+1 for rounding at the edges of the measured time).
    assert guesses.count(401) <= 10 + 2 * elapsed + 1
    assert checks == guesses.count(401)
    assert budget_refusals == guesses.count(429)
