"""Database trouble gives 503 with Retry-After, never a half-written push; the next push after
recovery succeeds."""

import json
import logging
import os
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager

import pytest

from .helpers import aggregate, counts, occurrence, post, push_body, scrape

pytestmark = pytest.mark.sqlite_only


def big_push(key, size=200_000):
    return push_body(aggregate(key, 1, [occurrence("x" * size)]), target_uuid=key)


def assert_unavailable(response):
    assert response.status_code == 503, response.data
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["code"] == 503


def test_a_held_write_lock_gives_503_then_recovers(make_app, database_url, caplog):
    client = make_app(SQLITE_BUSY_TIMEOUT_MS=200).test_client()
    post(client, push_body(aggregate("k", 1), target_uuid="p"))
    before = client.get("/-/errors").data

    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.ERROR, logger="periskop_pushgateway"):
            assert_unavailable(post(client, push_body(aggregate("k", 5), target_uuid="p")))
        assert "database unavailable" in caplog.text and "locked" in caplog.text
        assert client.get("/-/errors").data == before  # scrapes still read
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert post(client, push_body(aggregate("k", 5), target_uuid="p")).status_code == 200
    assert counts(scrape(client)) == {"k": 5}


@contextmanager
def small_filesystem(path, size="2m"):
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def remount(path, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def test_a_read_only_database_gives_503_then_recovers(make_app, tmp_path):
    with small_filesystem(tmp_path / "fs") as folder:
        app = make_app(DATABASE_URL=f"sqlite:///{folder / 'gateway.db'}")
        client = app.test_client()
        post(client, push_body(aggregate("k", 1), target_uuid="p"))
        before = client.get("/-/errors").data

        # A file system with files open for writing cannot be remounted read-only.
        app.extensions["periskop_pushgateway"].store.close()
        remount(folder, "ro")
        try:
            assert_unavailable(post(client, push_body(aggregate("k", 4), target_uuid="p")))
        finally:
            remount(folder, "rw")

        assert client.get("/-/errors").data == before
        assert post(client, push_body(aggregate("k", 4), target_uuid="p")).status_code == 200
        assert counts(scrape(client)) == {"k": 4}
        with sqlite3.connect(folder / "gateway.db") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_full_disk_gives_503_then_recovers(make_app, tmp_path):
    with small_filesystem(tmp_path / "fs", size="3m") as folder:
        client = make_app(DATABASE_URL=f"sqlite:///{folder / 'gateway.db'}").test_client()
        post(client, push_body(aggregate("small", 1), target_uuid="p"))
        before = client.get("/-/errors").data
        filler = folder / "filler"
        with open(filler, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass  # the disk is full

        assert_unavailable(client.post("/errors", data=json.dumps(big_push("big"))))
        assert client.get("/-/errors").data == before

        filler.unlink()
        assert client.post("/errors", data=json.dumps(big_push("big"))).status_code == 200
        assert counts(scrape(client)) == {"small": 1, "big": 1}
        with sqlite3.connect(folder / "gateway.db") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def database_files(database_url):
    path = database_url.removeprefix("sqlite:///")
    return [f"{path}{suffix}" for suffix in ("", "-wal", "-shm")]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_is_noticed_and_nothing_acknowledged(
    make_app, database_url, tmp_path, caplog, how
):
    client = make_app().test_client()
    first = push_body(aggregate("k", 1), target_uuid="p")
    for _ in range(3):  # remembered, and found to change nothing in the database as it is
        assert post(client, first).status_code == 200
    files = database_files(database_url)
    if how == "deleted":
        for name in files:
            os.remove(name)
    else:  # a copy put in its place, as a careless restore would: another inode
        shutil.copy(files[0], tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", files[0])

    for _ in range(3):
        assert_unavailable(post(client, push_body(aggregate("k", 2), target_uuid="p")))
        # The same body again, which the worker remembers and would answer without a read
        # while the database is unchanged: that looks at the file at the path, or nothing.
        assert_unavailable(post(client, first))
    assert client.get("/-/health").status_code == 503
    assert "deleted, moved or replaced" in caplog.text

    # A restart opens the file now at the path (a new one, or the copy) and writes there.
    restarted = make_app().test_client()
    assert post(restarted, push_body(aggregate("k", 2), target_uuid="p")).status_code == 200
    assert counts(scrape(restarted)) == {"k": 2}
