"""Rendered exports are kept as files that the workers share (export_cache.py), within
EXPORT_CACHE_BYTES, the least recently scraped removed first; a removed, outgrown or unwritable
one is rendered again, the same, and a file is only ever served for the version it holds."""

import json
import os
import shutil
import subprocess
import tempfile

import requests

from periskop_pushgateway.storage.export_cache import ExportFileCache

from .conftest import new_database_url
from .helpers import aggregate, occurrence, post, push_body
from .servers import production_gunicorn


def kept(files, name, version, encoding=None):
    file = files.open(name, version, encoding)
    if file is None:
        return None
    with file:
        return file.read()


def test_the_files_keep_the_most_recently_scraped_within_their_bytes(tmp_path):
    files = ExportFileCache(tmp_path, max_bytes=10)
    files.put("a", (1, 1, 1), b"aaaa")
    files.put("b", (2, 1, 1), b"bbbb")
    # "a" scraped long ago, "b" since: "a" goes first.
    os.utime(files._path("a", (1, 1, 1), None), ns=(10**9, 10**9))
    files.put("c", (3, 1, 1), b"cccc")
    assert kept(files, "a", (1, 1, 1)) is None
    assert kept(files, "b", (2, 1, 1)) == b"bbbb" and kept(files, "c", (3, 1, 1)) == b"cccc"
    assert files.size() == 8

    files.put("c", (3, 1, 2), b"CCCC")  # a new version of a group replaces its old one
    assert kept(files, "c", (3, 1, 1)) is None and kept(files, "c", (3, 1, 2)) == b"CCCC"
    files.put("c", (3, 1, 2), b"CC", "gzip")  # each form is a file of its own
    assert kept(files, "c", (3, 1, 2)) == b"CCCC" and kept(files, "c", (3, 1, 2), "gzip") == b"CC"
    files.put("d", (4, 1, 1), b"d" * 11)  # larger than all of them: not kept
    assert kept(files, "d", (4, 1, 1)) is None and files.size() <= 10


def test_many_large_groups_scraped_stay_within_the_bound(make_app):
    app = make_app(EXPORT_CACHE_BYTES=300_000)
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    bodies = {}
    for group in range(6):  # about 100 KB of export each
        name = f"big-{group}"
        post(client, push_body(aggregate("k", 1, [occurrence("x" * 100_000)])), group=name)
        bodies[name] = client.get(f"/services/{name}/-/errors").data
        assert store.exports.size() <= 300_000
    for name, body in bodies.items():  # the removed ones are rendered again, the same
        assert client.get(f"/services/{name}/-/errors").data == body
    assert 0 < store.exports.size() <= 300_000


def test_a_group_made_again_with_the_id_of_a_deleted_one_is_not_served_its_export(make_app):
    app = make_app()
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    post(client, push_body(aggregate("Old", 1, [occurrence("old")])), group="jobs")
    assert "Old" in client.get("/services/jobs/-/errors").get_data(as_text=True)
    # Deleted (as pruning deletes a group idle past retention) and made again: SQLite gives
    # the new row the same id, and the same revision after one push.
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM groups WHERE name = 'jobs'")
    post(client, push_body(aggregate("New", 1, [occurrence("new")])), group="jobs")
    keys = [
        a["aggregation_key"]
        for a in client.get("/services/jobs/-/errors").json["aggregated_errors"]
    ]
    assert keys == ["New"]


def test_scrapes_are_answered_when_the_files_cannot_be_written(app, client):
    store = app.extensions["periskop_pushgateway"].store
    post(client, push_body(aggregate("k", 1, [occurrence("x")])))
    shutil.rmtree(store.exports.directory)  # as a full or vanished disk would fail a write
    for _ in range(2):
        response = client.get("/-/errors", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
        assert [
            a["aggregation_key"]
            for a in json.loads(client.get("/-/errors").data)["aggregated_errors"]
        ] == ["k"]


def gateway(url, folder, directory):
    server = production_gunicorn(url, folder)
    server.env["PERISKOP_PUSHGATEWAY_EXPORT_CACHE_DIR"] = str(directory)
    return server


def test_the_workers_share_one_file_per_form_and_a_restart_empties_the_directory(tmp_path):
    directory = tmp_path / "exports"
    url = new_database_url(tmp_path)
    with gateway(url, tmp_path, directory) as server:
        aggregates = [aggregate(f"Error{n}", 1, [occurrence("boom")]) for n in range(300)]
        requests.post(f"{server.url}/errors", data=json.dumps(push_body(*aggregates)), timeout=10)
        plain = {requests.get(f"{server.url}/-/errors", timeout=10).content for _ in range(8)}
        for _ in range(8):
            requests.get(f"{server.url}/-/errors", headers={"Accept-Encoding": "gzip"}, timeout=10)
        [body] = plain
        names = sorted(path.name for path in directory.iterdir())
        assert [name.split(".", 4)[-1] for name in names] == ["json", "json.gz"]
        assert (directory / names[0]).read_bytes() == body
    (directory / "stray.1.2.3.json").write_bytes(b"{}")  # of another database, say
    with gateway(url, tmp_path, directory):
        assert list(directory.iterdir()) == []


def test_a_gateway_removes_the_directories_of_gateways_that_died_without_removing_theirs(
    make_app, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: nothing answers to it
    abandoned = tmp_path / f"periskop-pushgateway-exports-{dead.pid}-abc123"
    abandoned.mkdir()
    (abandoned / "x.1.2.3.json").write_bytes(b"{}")
    live = tmp_path / f"periskop-pushgateway-exports-{os.getppid()}-def456"
    live.mkdir()
    other = tmp_path / "something-else"
    other.mkdir()

    store = make_app().extensions["periskop_pushgateway"].store
    assert not abandoned.exists()
    assert live.exists() and other.exists()
    assert store.exports.directory.parent == tmp_path
    assert store.exports.directory.name.startswith(f"periskop-pushgateway-exports-{os.getpid()}-")
