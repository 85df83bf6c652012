"""Optional Basic auth, per role, with password hashes only; tested with the real client."""

import base64
import re
import subprocess
import sys

import pytest
import requests
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter
from werkzeug.security import check_password_hash, generate_password_hash

from periskop_pushgateway.web.throttle import FailedCredentials

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


# Repeated failed credentials from one address are refused with 429 before they cost a hash
# check; failures are counted per worker, per client address.


@pytest.fixture
def guarded(make_app):
    """Push and scrape credentials, and 3 failed checks per address per minute."""
    return make_app(
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH=PUSH_HASH,
        SCRAPE_USERNAME="periskop",
        SCRAPE_PASSWORD_HASH=SCRAPE_HASH,
        AUTH_FAILURES_PER_MINUTE=3,
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


def test_the_admin_credentials_open_what_the_scrape_ones_do(make_app):
    client = make_app(
        SCRAPE_USERNAME="periskop",
        SCRAPE_PASSWORD_HASH=SCRAPE_HASH,
        ADMIN_USERNAME="ops",
        ADMIN_PASSWORD_HASH=ADMIN_HASH,
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


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_failures_age_out_of_the_window_and_retry_after_says_when():
    clock = FakeClock()
    throttle = FailedCredentials(max_failures=3, window_seconds=60, clock=clock)
    for offset in (0, 10, 20):
        clock.now = 1000.0 + offset
        assert throttle.seconds_to_wait("192.0.2.1") == 0
        throttle.record_failure("192.0.2.1")
    clock.now = 1025.0
    assert throttle.seconds_to_wait("192.0.2.1") == 35  # the failure at 0 s frees a slot at 60
    assert throttle.seconds_to_wait("192.0.2.2") == 0
    clock.now = 1059.5
    assert throttle.seconds_to_wait("192.0.2.1") == 1
    clock.now = 1060.0
    assert throttle.seconds_to_wait("192.0.2.1") == 0  # one slot free again
    throttle.record_failure("192.0.2.1")
    assert throttle.seconds_to_wait("192.0.2.1") == 10  # now the failure at 10 s is the oldest
    clock.now = 1200.0
    assert throttle.seconds_to_wait("192.0.2.1") == 0
    assert len(throttle) == 0  # an address whose failures all aged out is forgotten


def test_the_map_of_addresses_stays_within_its_bound():
    clock = FakeClock()
    throttle = FailedCredentials(max_failures=2, max_addresses=100, clock=clock)
    for number in range(250):
        throttle.record_failure(f"10.0.{number // 256}.{number % 256}")
        throttle.record_failure(f"10.0.{number // 256}.{number % 256}")
        assert len(throttle) <= 100
    assert len(throttle) == 100
    assert throttle.seconds_to_wait("10.0.0.249") > 0  # the most recent are kept
    assert throttle.seconds_to_wait("10.0.0.0") == 0  # the least recent were dropped


def test_gunicorn_workers_refuse_a_guessing_address_and_serve_the_others(database_url, tmp_path):
    """Each of the 2 workers counts on its own: up to 2 x 10 guesses are checked, then 429."""
    server = Gunicorn(
        database_url,
        workers=2,
        log_path=tmp_path / "gunicorn.log",
        env={
            "PERISKOP_PUSHGATEWAY_PUSH_USERNAME": "jobs",
            "PERISKOP_PUSHGATEWAY_PUSH_PASSWORD_HASH": PUSH_HASH,
            "PERISKOP_PUSHGATEWAY_PROXY_HOPS": "1",  # as behind nginx: the address is forwarded
        },
    )
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    with server:
        statuses = []
        for attempt in range(30):
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
        assert set(statuses) <= {401, 429}
        assert 10 <= statuses.count(401) <= 20
        assert statuses.count(429) >= 10
        for _ in range(5):
            pushed = requests.post(
                server.url + "/errors",
                data=BODY,
                headers={"X-Forwarded-For": "198.51.100.2", **basic("jobs", "push-secret")},
                timeout=10,
            )
            assert pushed.status_code == 200
