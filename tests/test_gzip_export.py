"""A scrape that accepts gzip (the Periskop server's Go client does, by default) gets the export
compressed, once per change of the group; any other gets it plain."""

import gzip
import json
import os

import pytest
import requests
from sqlalchemy import event

from .helpers import aggregate, occurrence, post, push_body
from .servers import gunicorn_on_new_database


def fill(client, keys=200):
    aggregates = [
        aggregate(f"Error{n}", n + 1, [occurrence(f"failure {n}") for _ in range(3)])
        for n in range(keys)
    ]
    assert post(client, push_body(*aggregates), group="jobs").status_code == 200


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate", "br;q=1.0, gzip;q=0.8", "*"])
def test_a_scrape_accepting_gzip_gets_the_same_export_compressed(client, accept):
    fill(client)
    plain = client.get("/services/jobs/-/errors")
    compressed = client.get("/services/jobs/-/errors", headers={"Accept-Encoding": accept})
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert compressed.headers["Content-Type"] == "application/json"
    assert "Accept-Encoding" in compressed.headers["Vary"]
    assert gzip.decompress(compressed.data) == plain.data
    assert len(compressed.data) < len(plain.data) / 5


@pytest.mark.parametrize("accept", [None, "identity", "deflate", "gzip;q=0"])
def test_any_other_scrape_gets_it_plain(client, accept):
    fill(client, keys=3)
    headers = {"Accept-Encoding": accept} if accept else {}
    response = client.get("/services/jobs/-/errors", headers=headers)
    assert "Content-Encoding" not in response.headers
    assert "Accept-Encoding" in response.headers["Vary"]
    assert json.loads(response.data)["aggregated_errors"]


def test_the_compressed_export_is_made_once_per_change_of_the_group(app, client):
    store = app.extensions["periskop_pushgateway"].store
    fill(client)
    gzip_scrape = {"Accept-Encoding": "gzip"}
    first = client.get("/services/jobs/-/errors", headers=gzip_scrape).data
    [kept] = store.exports.directory.glob("*.json.gz")
    assert kept.read_bytes() == first
    # Served from the file kept: not compressed again.
    with store.export("jobs", "gzip") as served:
        assert served.name == str(kept) and served.read() == first
    post(client, push_body(aggregate("Error0", 5)), group="jobs")
    changed = client.get("/services/jobs/-/errors", headers=gzip_scrape).data
    assert (
        changed != first and gzip.decompress(changed) == client.get("/services/jobs/-/errors").data
    )
    assert not kept.exists()  # the version it held is gone


def test_the_bound_counts_both_forms(make_app):
    app = make_app(EXPORT_CACHE_BYTES=150_000)
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    for n in range(5):
        message = os.urandom(30_000).hex()  # compresses to about half: both forms weigh
        post(client, push_body(aggregate("k", 1, [occurrence(message)])), group=f"g{n}")
        client.get(f"/services/g{n}/-/errors", headers={"Accept-Encoding": "gzip"})
        assert store.exports.size() <= 150_000
    suffixes = {path.name.split(".", 4)[-1] for path in store.exports.directory.iterdir()}
    assert suffixes == {"json", "json.gz"}


def test_gunicorn_serves_gzip_to_a_client_that_asks(tmp_path):
    with gunicorn_on_new_database(tmp_path) as server:
        aggregates = [aggregate(f"Error{n}", 1, [occurrence("boom")]) for n in range(300)]
        requests.post(f"{server.url}/errors", data=json.dumps(push_body(*aggregates)), timeout=10)
        response = requests.get(f"{server.url}/-/errors", timeout=10, stream=True)
        raw = response.raw.read(decode_content=False)
        assert response.headers["Content-Encoding"] == "gzip"
        exported = json.loads(gzip.decompress(raw))
        assert len(exported["aggregated_errors"]) == 300
        assert int(response.headers["Content-Length"]) == len(raw)


def test_a_kept_export_is_found_without_sqlalchemys_connection_on_sqlite(app, client):
    store = app.extensions["periskop_pushgateway"].store
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's driver snapshot")
    fill(client)
    first = client.get("/services/jobs/-/errors", headers={"Accept-Encoding": "gzip"}).data
    connections = []
    record = connections.append  # one bound method, to remove it by
    event.listen(store.engine, "engine_connect", record)
    try:
        again = client.get("/services/jobs/-/errors", headers={"Accept-Encoding": "gzip"}).data
        assert again == first and connections == []
        # Changed since: found missing the same way, then rendered in a snapshot of its own.
        post(client, push_body(aggregate("Error0", 5)), group="jobs")
        changed = client.get("/services/jobs/-/errors", headers={"Accept-Encoding": "gzip"})
        assert gzip.decompress(changed.data) == client.get("/services/jobs/-/errors").data
        assert changed.data != first and connections
        # A group nothing was pushed to: its empty export, read the same way, once.
        connections.clear()
        for accept in ({}, {"Accept-Encoding": "gzip"}):
            response = client.get("/services/never-pushed/-/errors", headers=accept)
            body = gzip.decompress(response.data) if accept else response.data
            assert json.loads(body)["aggregated_errors"] == []
        assert connections == []
    finally:
        event.remove(store.engine, "engine_connect", record)
