"""The database stamp (DatabaseStamp) behind the verdicts of pushes that change nothing: equal
readings only while nothing was committed, by any connection of any process, however the WAL
is checkpointed or started over in between; read from the wal-index header where there is one
(wal_index.py), from SQLite's data_version otherwise."""

import sqlite3
import subprocess
import sys

import pytest

from periskop_pushgateway.storage.sqlite.database_stamp import DatabaseStamp
from periskop_pushgateway.storage.sqlite.wal_index import HEADER_BYTES, WalIndexHeader

pytestmark = pytest.mark.sqlite_only


def new_database(path, journal_mode="WAL"):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={journal_mode}")
    connection.execute("CREATE TABLE t (x INTEGER)")
    return connection


def test_the_stamp_is_the_wal_index_header_and_changes_at_each_commit(tmp_path):
    path = str(tmp_path / "gateway.db")
    writer = new_database(path)
    stamp = DatabaseStamp(path, timeout_s=1)
    first = stamp()
    assert isinstance(first, bytes) and len(first) == HEADER_BYTES
    assert stamp() == first  # nothing committed
    writer.execute("INSERT INTO t VALUES (1)")
    second = stamp()
    assert second != first
    writer.execute("SELECT * FROM t").fetchall()  # a read commits nothing
    assert stamp() == second
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (2)")
    assert stamp() == second  # not committed yet
    writer.execute("ROLLBACK")
    assert stamp() == second
    stamp.close()
    writer.close()


def test_a_checkpoint_and_a_wal_started_over_never_hide_a_commit(tmp_path):
    """The WAL is copied into the database and started from its beginning again (the frame
    counter falls back), with a commit of the same size as the one before: still a change."""
    path = str(tmp_path / "gateway.db")
    writer = new_database(path)
    stamp = DatabaseStamp(path, timeout_s=1)
    seen = {stamp()}
    for round_ in range(30):
        writer.execute("INSERT INTO t VALUES (?)", (round_,))
        after_commit = stamp()
        assert after_commit not in seen
        seen.add(after_commit)
        mode = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")[round_ % 4]
        writer.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        # A checkpoint changes no data: the stamp may stay or change, but never to an
        # earlier reading.
        after_checkpoint = stamp()
        assert after_checkpoint == after_commit or after_checkpoint not in seen
        seen.add(after_checkpoint)
    stamp.close()
    writer.close()


COMMITTER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA wal_autocheckpoint=5")  # the WAL starts over every few commits
for line in sys.stdin:
    connection.execute("INSERT INTO t VALUES (?)", (len(line),))
    if line.strip() == "truncate":
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    print("committed", flush=True)
"""


def test_every_commit_of_another_process_changes_the_stamp(tmp_path):
    path = str(tmp_path / "gateway.db")
    new_database(path).close()
    stamp = DatabaseStamp(path, timeout_s=1)
    committer = subprocess.Popen(
        [sys.executable, "-c", COMMITTER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for round_ in range(300):
            before = stamp()
            committer.stdin.write("truncate\n" if round_ % 7 == 0 else "commit\n")
            committer.stdin.flush()
            assert committer.stdout.readline() == "committed\n"
            assert stamp() != before, f"commit {round_} not seen"
    finally:
        committer.stdin.close()
        committer.wait(10)
    assert isinstance(stamp(), bytes)  # read from the header throughout
    stamp.close()


def test_without_a_wal_index_the_stamp_is_data_version(tmp_path):
    path = str(tmp_path / "gateway.db")
    writer = new_database(path, journal_mode="DELETE")
    stamp = DatabaseStamp(path, timeout_s=1)
    first = stamp()
    assert isinstance(first, int)
    assert stamp() == first
    writer.execute("INSERT INTO t VALUES (1)")
    assert stamp() != first
    stamp.close()
    writer.close()


def header_copy(version=3007000, is_init=1, change=1):
    """A 48-byte WalIndexHdr: iVersion, unused, iChange, isInit, then the rest zero."""
    return (
        version.to_bytes(4, sys.byteorder)
        + bytes(4)
        + change.to_bytes(4, sys.byteorder)
        + bytes([is_init])
        + bytes(35)
    )


@pytest.mark.parametrize(
    ("content", "readable"),
    [
        (header_copy() * 2 + bytes(40), True),
        (header_copy(version=3008000) * 2 + bytes(40), False),  # another layout
        (header_copy(is_init=0) * 2 + bytes(40), False),  # never written
        (header_copy()[:40], False),  # too short
    ],
)
def test_a_wal_index_header_is_read_only_when_it_is_what_sqlite_writes(tmp_path, content, readable):
    (tmp_path / "gateway.db-shm").write_bytes(content)
    header = WalIndexHeader.open(str(tmp_path / "gateway.db"))
    assert (header is not None) == readable
    if header is not None:
        assert header.read() == content[:HEADER_BYTES]
        header.close()


def test_a_header_being_rewritten_is_not_a_reading(tmp_path):
    """A commit rewrites the second copy, then the first: while they differ, no reading (the
    stamp then asks SQLite's data_version)."""
    shm = tmp_path / "gateway.db-shm"
    shm.write_bytes(header_copy(change=1) * 2 + bytes(40))
    header = WalIndexHeader.open(str(tmp_path / "gateway.db"))
    with shm.open("r+b") as file:
        file.seek(48)
        file.write(header_copy(change=2))
        file.flush()
        assert header.read() is None
        file.seek(0)
        file.write(header_copy(change=2))
        file.flush()
    assert header.read() == header_copy(change=2) * 2
    header.close()
