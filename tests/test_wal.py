"""SQLite's write-ahead log stays bounded: checkpointed as it grows, and its file cut back to
SQLITE_WAL_LIMIT_BYTES once checkpointed, even after a long reader held it back."""

import os
import sqlite3

import pytest

from .helpers import aggregate, counts, occurrence, post, push_body, scrape

pytestmark = pytest.mark.sqlite_only

LIMIT = 512 * 1024


def wal_size(database_url):
    path = database_url.removeprefix("sqlite:///") + "-wal"
    return os.path.getsize(path) if os.path.exists(path) else 0


def big_push(number):
    # Each push stores a new 60 KB occurrence: at least 15 pages of log.
    return push_body(aggregate("k", number, [occurrence("x" * 60_000)]), target_uuid="p")


def test_the_log_file_is_cut_back_once_a_long_reader_lets_go(make_app, database_url):
    client = make_app(SQLITE_WAL_LIMIT_BYTES=LIMIT).test_client()
    post(client, big_push(1))

    # A reader in the middle of a long transaction: no checkpoint may pass its snapshot,
    # so the log grows with every push meanwhile.
    reader = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM aggregates").fetchone()
    for number in range(2, 202):
        assert post(client, big_push(number)).status_code == 200
    grown = wal_size(database_url)
    assert grown > 4 * 1024 * 1024  # past SQLite's checkpoint threshold of 1,000 pages
    reader.execute("ROLLBACK")
    reader.close()

    # The next commits checkpoint the log, start it over and cut the file back.
    for number in range(202, 205):
        assert post(client, big_push(number)).status_code == 200
    assert wal_size(database_url) <= LIMIT
    assert counts(scrape(client)) == {"k": 204}
