"""The admin API: resolve an error, wipe a group, read the status."""

import json
from urllib.parse import quote

import pytest
import requests
from werkzeug.security import generate_password_hash

from .conftest import TEST_DATABASE
from .helpers import aggregate, by_key, counts, occurrence, post, push_body, scrape
from .periskop_server import ScrapeChecker
from .servers import gunicorn_on_new_database
from .test_auth import basic


def test_resolving_an_error_takes_it_out_until_it_happens_again(client):
    checker = ScrapeChecker()
    first = occurrence("a")
    post(client, push_body(aggregate("ValueError@1", 3, [first]), target_uuid="p"))
    post(client, push_body(aggregate("KeyError@2", 1)))
    checker.observe(scrape(client))

    response = client.delete("/-/errors/ValueError@1")
    assert response.status_code == 200
    assert response.get_json() == {"group": None, "resolved": "ValueError@1"}
    checker.observe(scrape(client))
    assert counts(scrape(client)) == {"KeyError@2": 1}

    post(client, push_body(aggregate("ValueError@1", 3, [first]), target_uuid="p"))
    assert "ValueError@1" not in counts(scrape(client))  # nothing new: stays resolved

    post(client, push_body(aggregate("ValueError@1", 4, [occurrence("b")]), target_uuid="p"))
    checker.observe(scrape(client))
    back = by_key(scrape(client))["ValueError@1"]
    assert back["total_count"] == 4
    assert [o["error"]["message"] for o in back["latest_errors"]] == ["a", "b"]


def test_resolving_in_a_group_and_keys_with_slashes(client):
    key = "IOError@/var/log app.py?x=1#frag"
    post(client, push_body(aggregate(key, 1), aggregate("other", 1)), group="g")
    assert client.delete(f"/services/g/-/errors/{quote(key, safe='')}").status_code == 200
    assert counts(scrape(client, "g")) == {"other": 1}


def test_resolving_what_is_not_exported_is_404(client):
    assert client.delete("/-/errors/nothing").status_code == 404
    post(client, push_body(aggregate("k", 1)))
    assert client.delete("/services/g/-/errors/k").status_code == 404
    assert client.delete("/-/errors/k").status_code == 200
    assert client.delete("/-/errors/k").status_code == 404


def test_wiping_a_group_gives_it_a_new_target_uuid(client):
    post(client, push_body(aggregate("k", 5, [occurrence()]), target_uuid="p"), group="g")
    post(client, push_body(aggregate("k", 2)), group="other")
    old_uuid = scrape(client, "g")["target_uuid"]

    response = client.delete("/services/g")
    assert response.status_code == 200
    new_uuid = response.get_json()["target_uuid"]
    assert new_uuid != old_uuid
    assert scrape(client, "g") == {"aggregated_errors": [], "target_uuid": new_uuid}
    assert counts(scrape(client, "other")) == {"k": 2}

    # The process's counters went too: its next cumulative push counts in full.
    post(client, push_body(aggregate("k", 5), target_uuid="p"), group="g")
    assert counts(scrape(client, "g")) == {"k": 5}
    assert client.delete("/services/never-pushed").status_code == 404


def test_wiping_the_default_group(client):
    post(client, push_body(aggregate("k", 1)))
    old_uuid = scrape(client)["target_uuid"]
    assert client.delete("/-/errors").status_code == 200
    export = scrape(client)
    assert export["aggregated_errors"] == [] and export["target_uuid"] != old_uuid


def test_status_shows_groups_size_and_limits(client):
    post(client, push_body(aggregate("a", 1), aggregate("b", 1)), group="g")
    post(client, push_body(aggregate("a", 1)))
    client.delete("/services/g/-/errors/b")
    status = client.get("/-/status").get_json()
    assert status["version"]
    assert status["database"]["dialect"] == TEST_DATABASE
    assert status["database"]["size_bytes"] > 0
    groups = {g["name"]: g for g in status["groups"]}
    assert groups["g"]["exported_keys"] == 1 and groups["g"]["stored_keys"] == 2
    assert groups[None]["exported_keys"] == 1
    assert groups["g"]["last_push_at"].endswith("Z")
    assert status["settings"]["MAX_KEYS_PER_GROUP"] == 5000
    assert status["settings"]["OCCURRENCES_PER_KEY"] == 10
    assert status["authentication"] == []
    assert not any("HASH" in name or "USERNAME" in name for name in status["settings"])


@pytest.mark.parametrize(
    "method, path",
    [
        ("delete", "/-/errors/k"),
        ("delete", "/services/g"),
        ("delete", "/-/errors"),
        ("get", "/-/status"),
        ("post", "/services/g/-/resolve"),
    ],
)
def test_admin_endpoints_take_admin_credentials(make_app, method, path):
    client = make_app(
        ADMIN_USERNAME="ops",
        ADMIN_PASSWORD_HASH=generate_password_hash("pw"),
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH=generate_password_hash("jobpw"),
    ).test_client()
    post_ = client.post(
        "/services/g/errors",
        data='{"aggregated_errors":[{"aggregation_key":"k"}]}',
        headers=basic("jobs", "jobpw"),
    )
    assert post_.status_code == 200
    assert getattr(client, method)(path).status_code == 401
    assert getattr(client, method)(path, headers=basic("jobs", "jobpw")).status_code == 401
    assert getattr(client, method)(path, headers=basic("ops", "pw")).status_code in (200, 400, 404)


ODD_KEYS = ["/leading slash", "//two", "trailing/", "line\nbreak", "a%2Fb", "tab\tand\r\nCRLF"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_every_key_a_push_may_hold_can_be_resolved(client, key):
    post(client, push_body(aggregate(key, 1), aggregate("other", 1)), group="g")
    assert client.delete(f"/services/g/-/errors/{quote(key, safe='')}").status_code == 200
    assert counts(scrape(client, "g")) == {"other": 1}


def test_every_key_can_be_resolved_through_gunicorn(tmp_path):
    """gunicorn decodes the path itself: the keys must survive its decoding too."""
    with gunicorn_on_new_database(
        tmp_path, env={"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true"}
    ) as server:
        body = push_body(*(aggregate(key, 1) for key in ODD_KEYS), aggregate("other", 1))
        requests.post(f"{server.url}/errors", data=json.dumps(body), timeout=10)
        for key in ODD_KEYS:
            response = requests.delete(f"{server.url}/-/errors/{quote(key, safe='')}", timeout=10)
            assert response.status_code == 200, (key, response.text)
        exported = requests.get(f"{server.url}/-/errors", timeout=10).json()
        assert counts(exported) == {"other": 1}


LONG_KEY = "".join(chr(0x1F300 + n % 1000) for n in range(1024))  # 4 KB of UTF-8, 12 KB encoded


def test_a_key_too_long_for_a_url_is_resolved_by_naming_it_in_a_body(tmp_path):
    """The key may be of MAX_KEY_LENGTH 4-byte characters: percent-encoded, over the request
    line gunicorn reads (and nginx's, see test_nginx.py)."""
    with gunicorn_on_new_database(
        tmp_path, env={"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true"}
    ) as server:
        body = push_body(aggregate(LONG_KEY, 3), aggregate("other", 1), target_uuid="p")
        data = json.dumps(body, ensure_ascii=False).encode()
        for group in ("", "/services/g"):
            assert requests.post(f"{server.url}{group}/errors", data=data, timeout=10).ok
            response = requests.post(
                f"{server.url}{group}/-/resolve",
                data=json.dumps({"aggregation_key": LONG_KEY}),
                timeout=10,
            )
            assert response.status_code == 200, response.text
            assert response.json()["resolved"] == LONG_KEY
            assert counts(requests.get(f"{server.url}{group}/-/errors", timeout=10).json()) == {
                "other": 1
            }
        # It comes back counting on from where it was.
        body = push_body(aggregate(LONG_KEY, 4), target_uuid="p")
        requests.post(f"{server.url}/errors", data=json.dumps(body), timeout=10)
        exported = requests.get(f"{server.url}/-/errors", timeout=10).json()
        assert counts(exported) == {LONG_KEY: 4, "other": 1}


@pytest.mark.parametrize(
    "data, status, field",
    [
        (b"not json", 400, "_body"),
        (b"[]", 400, "_body"),
        (b"{}", 400, "aggregation_key"),
        (b'{"aggregation_key": ""}', 400, "aggregation_key"),
        (b'{"aggregation_key": 7}', 400, "aggregation_key"),
        (b'{"aggregation_key": "absent"}', 404, None),
        (b'{"aggregation_key": "k", "padding": "' + b"x" * 70_000 + b'"}', 413, None),
    ],
)
def test_a_resolve_naming_no_exported_key_is_refused_and_changes_nothing(
    client, data, status, field
):
    post(client, push_body(aggregate("k", 1)))
    response = client.post("/-/resolve", data=data)
    assert response.status_code == status, response.data
    if field:
        assert response.get_json()["message"] == "invalid resolve request"
        assert field in response.get_json()["errors"]
    assert counts(scrape(client)) == {"k": 1}


def test_the_admin_api_is_off_until_it_has_credentials_or_is_opened(database_url):
    from periskop_pushgateway import create_app

    client = create_app({"DATABASE_URL": database_url}).test_client()
    post(client, push_body(aggregate("k", 1)), group="g")
    for method, path in (
        ("DELETE", "/services/g/-/errors/k"),
        ("DELETE", "/services/g"),
        ("DELETE", "/-/errors"),
        ("GET", "/-/status"),
        ("POST", "/services/g/-/resolve"),
    ):
        response = client.open(path, method=method, data='{"aggregation_key": "k"}')
        assert response.status_code == 403, (method, path)
        assert "PERISKOP_PUSHGATEWAY_ADMIN_OPEN=true" in response.get_json()["description"]
    assert counts(scrape(client, "g")) == {"k": 1}  # nothing was resolved or wiped

    password_hash = generate_password_hash("s3cret")
    with_credentials = create_app(
        {
            "DATABASE_URL": database_url,
            "ADMIN_USERNAME": "ops",
            "ADMIN_PASSWORD_HASH": password_hash,
        }
    ).test_client()
    assert with_credentials.delete("/services/g/-/errors/k").status_code == 401
    response = with_credentials.delete("/services/g/-/errors/k", headers=basic("ops", "s3cret"))
    assert response.status_code == 200
