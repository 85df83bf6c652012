"""Liveness apart from readiness: /-/healthy answers while the process does, /-/ready while the
database answers with the schema this version needs. A database outage makes every instance
not ready, none of them dead."""

import contextlib
import json
import re
import urllib.parse

import pytest
import requests
from sqlalchemy import create_engine, text
from werkzeug.security import generate_password_hash

from .conftest import TEST_DATABASE, _postgresql, new_database_url
from .helpers import aggregate, push_body
from .servers import Gunicorn


def test_both_probes_answer_ok_on_a_working_gateway(client):
    for path in ("/-/healthy", "/-/ready"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "OK"


def test_probes_stay_open_when_scrape_credentials_are_set(make_app):
    client = make_app(
        SCRAPE_USERNAME="periskop", SCRAPE_PASSWORD_HASH=generate_password_hash("s")
    ).test_client()
    assert client.get("/-/health").status_code == 401
    assert client.get("/-/healthy").status_code == 200
    assert client.get("/-/ready").status_code == 200


@contextlib.contextmanager
def schema_stamped(database_url, revision):
    """The database's schema revision set to another one for a while, as a newer gateway's
    migration would leave it."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        yield
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": head})
    finally:
        engine.dispose()


def test_a_schema_this_version_does_not_know_is_not_ready_but_alive(client, database_url):
    with schema_stamped(database_url, "9999_from_a_newer_gateway"):
        response = client.get("/-/ready")
        assert response.status_code == 503
        assert "9999_from_a_newer_gateway" in response.get_data(as_text=True)
        assert client.get("/-/healthy").status_code == 200
    assert client.get("/-/ready").status_code == 200


@contextlib.contextmanager
def database_away(database_url, folder):
    """The database out of reach while the gateway runs: on SQLite its folder moved away, on
    PostgreSQL the test's schema renamed (every statement then fails)."""
    if TEST_DATABASE == "sqlite":
        folder.rename(folder.with_name("away"))
        try:
            yield
        finally:
            folder.with_name("away").rename(folder)
        return
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(database_url).query)
    schema = re.search(r"search_path=(\w+)", query["options"][0]).group(1)
    _postgresql(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_away"')
    try:
        yield
    finally:
        _postgresql(f'ALTER SCHEMA "{schema}_away" RENAME TO "{schema}"')


def statuses(url, path, times=12):
    # Several requests, so that every worker is likely to answer some.
    return {requests.get(url + path, timeout=10).status_code for _ in range(times)}


@pytest.fixture
def gateway(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    server = Gunicorn(new_database_url(folder), workers=3, log_path=tmp_path / "gunicorn.log")
    with server:
        yield server, folder


def test_a_database_outage_makes_instances_not_ready_never_dead(gateway):
    server, folder = gateway
    assert requests.post(server.url + "/errors", data='{"aggregated_errors": []}').ok
    with database_away(server.database_url, folder):
        assert statuses(server.url, "/-/ready") == {503}
        assert statuses(server.url, "/-/health") == {503}
        assert statuses(server.url, "/-/healthy") == {200}
    assert statuses(server.url, "/-/ready") == {200}
    assert statuses(server.url, "/-/healthy") == {200}
    push = requests.post(server.url + "/errors", data=json.dumps(push_body(aggregate("k", 1))))
    assert push.status_code == 200
    assert "not ready: " in (folder.parent / "gunicorn.log").read_text()
