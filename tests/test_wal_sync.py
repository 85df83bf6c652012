"""Under SQLITE_SYNCHRONOUS=FULL a push is answered only once its commit is on disk, flushed
after the write lock is released (wal_sync.py): the real SQLite file and the gateway's own
write lock, with os.fdatasync watched to see what was flushed and when."""

import errno
import fcntl
import os
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from .helpers import aggregate, occurrence, post, push_body

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def flushes(monkeypatch):
    """Each fdatasync as (path flushed, whether the write lock was free at that moment), and
    `fail`: set it to make every flush fail as a broken disk would."""
    real = os.fdatasync
    seen = []

    def watched(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        seen.append((path, _write_lock_free(path.removesuffix("-wal") + ".writelock")))
        if watched.fail:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    watched.fail = False
    watched.seen = seen
    monkeypatch.setattr(os, "fdatasync", watched)
    return watched


def _write_lock_free(path):
    """The gateway's writers hold an flock on this file: taking it from another open file
    succeeds only when none holds it, this process's included."""
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _database_path(app):
    return app.extensions["periskop_pushgateway"].store.engine.url.database


def test_an_accepted_push_is_flushed_after_the_lock_is_released(make_app, flushes):
    app = make_app()
    wal = _database_path(app) + "-wal"
    flushes.seen.clear()
    for count in (1, 2, 3):
        body = push_body(aggregate("k", count, [occurrence(f"m{count}")]), target_uuid="p")
        assert post(app.test_client(), body).status_code == 200
        flushed = [free for path, free in flushes.seen if path == wal]
        assert flushed, "no flush of the WAL file before the answer"
        assert all(flushed), "the WAL was flushed while the write lock was held"
        flushes.seen.clear()
    # Commits wait for no disk flush of their own: SQLite's NORMAL, inside the lock.
    with app.extensions["periskop_pushgateway"].store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1


@pytest.mark.parametrize(("setting", "pragma"), [("NORMAL", 1), ("EXTRA", 3)])
def test_other_settings_are_sqlites_own_pragma(make_app, flushes, setting, pragma):
    """NORMAL flushes nothing per push; EXTRA (SQLite's FULL, in WAL mode) flushes inside the
    commit, holding the lock, where SQLite calls the C library itself: the gateway adds no
    flush of its own to either."""
    app = make_app(SQLITE_SYNCHRONOUS=setting)
    flushes.seen.clear()
    body = push_body(aggregate("k", 1, [occurrence("m")]), target_uuid="p")
    assert post(app.test_client(), body).status_code == 200
    assert not [path for path, _ in flushes.seen if path.endswith("-wal")]
    with app.extensions["periskop_pushgateway"].store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == pragma


def test_a_push_whose_flush_fails_is_not_acknowledged(make_app, flushes):
    app = make_app()
    client = app.test_client()
    first = push_body(aggregate("k", 1, [occurrence("m")]), target_uuid="p")
    assert post(client, first).status_code == 200
    flushes.fail = True
    again = push_body(aggregate("k", 5, [occurrence("m"), occurrence("n")]), target_uuid="p")
    response = post(client, again)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    # Committed but never acknowledged: the client pushes the same state again, which
    # counts once (rule 2), whichever of the two reached the disk.
    flushes.fail = False
    assert post(client, again).status_code == 200
    with sqlite3.connect(_database_path(app)) as connection:
        assert connection.execute("SELECT total_count FROM aggregates").fetchall() == [(5,)]


def test_a_database_reached_through_a_symbolic_link_has_its_own_wal_flushed(
    make_app, flushes, tmp_path
):
    """SQLite follows the link and keeps the WAL beside the file it opened: that is the one
    to flush, not one beside the link, which never exists."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "gateway.db").touch()  # an empty file is a new database to SQLite
    (tmp_path / "gateway.db").symlink_to(volume / "gateway.db")
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'gateway.db'}")
    flushes.seen.clear()
    body = push_body(aggregate("k", 1, [occurrence("m")]), target_uuid="p")
    assert post(app.test_client(), body).status_code == 200
    assert not (tmp_path / "gateway.db-wal").exists()
    assert str(volume / "gateway.db-wal") in [path for path, _ in flushes.seen]


def test_one_flush_covers_every_commit_before_it_and_a_failed_one_is_made_again(make_app, flushes):
    """Store.flush() after writes committed with flush=False: one fdatasync for all of them,
    none when nothing was committed since, and after a failed one the commits still count as
    not on disk until a flush succeeds."""
    app = make_app()
    store = app.extensions["periskop_pushgateway"].store
    wal = _database_path(app) + "-wal"

    def write():
        store.run_write(lambda c: c.exec_driver_sql("UPDATE groups SET revision = revision"), False)

    def wal_flushes():
        flushed = [path for path, _ in flushes.seen if path == wal]
        flushes.seen.clear()
        return len(flushed)

    store.flush()
    wal_flushes()
    write()
    write()
    assert store.unflushed()
    assert wal_flushes() == 0
    store.flush()
    assert wal_flushes() == 1
    assert not store.unflushed()
    store.flush()
    assert wal_flushes() == 0
    write()
    flushes.fail = True
    with pytest.raises(OperationalError):
        store.flush()
    assert store.unflushed()
    flushes.fail = False
    store.flush()
    assert wal_flushes() == 2  # the failed one, then the one made again
    assert not store.unflushed()
