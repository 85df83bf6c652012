"""Database trouble gives 503 with Retry-After, never a half-written push; the next push after
recovery succeeds."""

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy.exc import OperationalError

from periskop_pushgateway.app import create_app

from .helpers import aggregate, counts, occurrence, post, push_body, scrape
from .pushers import check_export, run_pushers, stop_pushers, wait_for_acknowledged_pushes
from .servers import production_gunicorn

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


def fill_filesystem(path):
    """Write the file `path` until its filesystem is full."""
    # Unbuffered: a buffered file would try the bytes it holds once more when closed.
    with open(path, "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 65536):
                pass
        except OSError:
            pass  # the disk is full


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
        fill_filesystem(filler)

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


def database_file_alone(database_url, folder):
    """A copy of the database file without its WAL: what a restart finds once the WAL is
    gone."""
    copy = folder / "alone.db"
    shutil.copy(database_url.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_wal_file_deleted_or_replaced_is_noticed_and_what_it_held_is_kept(
    make_app, database_url, tmp_path, caplog, how, synchronous
):
    app = make_app(SQLITE_SYNCHRONOUS=synchronous)
    client = app.test_client()
    first = push_body(aggregate("k", 1), target_uuid="p")
    for _ in range(3):
        assert post(client, first).status_code == 200
    wal = database_files(database_url)[1]
    # What was acknowledged is in the WAL, not yet in the database file.
    assert os.path.getsize(wal) > 0
    if how == "deleted":
        os.remove(wal)
    else:  # another file in its place: another inode, and no WAL of this database
        (tmp_path / "other").write_bytes(b"not a WAL file" * 100)
        os.replace(tmp_path / "other", wal)

    with caplog.at_level(logging.ERROR, logger="periskop_pushgateway"):
        for _ in range(3):
            assert_unavailable(post(client, push_body(aggregate("k", 2), target_uuid="p")))
            # Remembered and unchanged in the database as it was: refused all the same.
            assert_unavailable(post(client, first))
        assert client.get("/-/health").status_code == 503
    assert f"the WAL file {wal} was deleted or replaced" in caplog.text
    assert "restart the gateway" in caplog.text
    # Every push acknowledged is in the database file itself, which a restart reads.
    alone = create_app({"DATABASE_URL": database_file_alone(database_url, tmp_path)})
    assert counts(scrape(alone.test_client())) == {"k": 1}

    app.extensions["periskop_pushgateway"].store.close()
    restarted = make_app().test_client()
    assert counts(scrape(restarted)) == {"k": 1}
    assert post(restarted, push_body(aggregate("k", 2), target_uuid="p")).status_code == 200
    assert counts(scrape(restarted)) == {"k": 2}


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_wal_file_deleted_or_replaced_under_load_loses_nothing_acknowledged(
    database_url, tmp_path, how, synchronous
):
    """gunicorn's workers under clients pushing without pause: from a moment after the WAL
    file is gone every push is refused, and after a kill -9 and a start every push answered
    200 is exported."""
    wal = database_files(database_url)[1]
    gateway = production_gunicorn(
        database_url, tmp_path, env={"PERISKOP_PUSHGATEWAY_SQLITE_SYNCHRONOUS": synchronous}
    )
    with gateway:
        pushers, stop = run_pushers(gateway.url, 4)
        try:
            wait_for_acknowledged_pushes(pushers, more_than=20, timeout=30)
            if how == "deleted":
                os.remove(wal)
            else:
                (tmp_path / "other").write_bytes(b"not a WAL file" * 100)
                os.replace(tmp_path / "other", wal)
            # Each worker notices at its next transaction; a push already past that point
            # may still be answered.
            time.sleep(0.5)
            acknowledged = [p.acknowledged for p in pushers]
            refused = sum(len(p.failures) for p in pushers)
            time.sleep(1)
            assert [p.acknowledged for p in pushers] == acknowledged
            assert sum(len(p.failures) for p in pushers) > refused + 10
            others = [f for p in pushers for f in p.failures if not f.startswith("503 ")]
            assert not others
        finally:
            stop_pushers(pushers, stop)
        log = (tmp_path / "gunicorn.log").read_text()
        assert f"the WAL file {wal} was deleted or replaced" in log
        gateway.kill()
        gateway.start()
        for pusher in pushers:
            pusher.finish()
        response = requests.get(gateway.url + "/-/errors", timeout=10)
        # A commit the deletion overtook between the check before it and the one after is
        # answered 503 and kept all the same: at most one per worker, before its next BEGIN.
        check_export(response.json(), pushers, refused_but_stored=2)
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_wal_file_deleted_during_a_write_commits_nothing(make_app, database_url, tmp_path):
    """Deleted between BEGIN and COMMIT: the transaction is rolled back, not committed into
    the file that is gone (and kept by the checkpoint that saves what that file held)."""
    app = make_app()
    assert post(app.test_client(), push_body(aggregate("k", 1), target_uuid="p")).status_code == 200
    store = app.extensions["periskop_pushgateway"].store
    wal = database_files(database_url)[1]

    def apply(connection):
        os.remove(wal)
        connection.exec_driver_sql("UPDATE groups SET revision = 424242")

    with pytest.raises(OperationalError, match="was deleted or replaced"):
        store.run_write(apply)
    alone = database_file_alone(database_url, tmp_path).removeprefix("sqlite:///")
    with sqlite3.connect(alone) as connection:
        assert 424242 not in {r for (r,) in connection.execute("SELECT revision FROM groups")}
    assert counts(scrape(create_app({"DATABASE_URL": f"sqlite:///{alone}"}).test_client())) == {
        "k": 1
    }
