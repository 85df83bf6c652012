"""The database stamp (DatabaseStamp) behind the verdicts of pushes that change nothing: equal
readings only while nothing was committed, by any connection of any process, however the WAL
is checkpointed or started over in between, in WAL mode or not."""

import sqlite3
import subprocess
import sys

import pytest

from periskop_pushgateway.storage.sqlite.database_stamp import DatabaseStamp

pytestmark = pytest.mark.sqlite_only


def new_database(path, journal_mode="WAL"):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={journal_mode}")
    connection.execute("CREATE TABLE t (x INTEGER)")
    return connection


def test_the_stamp_changes_at_each_commit_and_only_then(tmp_path):
    path = str(tmp_path / "gateway.db")
    writer = new_database(path)
    stamp = DatabaseStamp(path, timeout_s=1)
    first = stamp()
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
    stamp.close()


def test_outside_wal_mode_the_stamp_changes_at_each_commit_too(tmp_path):
    path = str(tmp_path / "gateway.db")
    writer = new_database(path, journal_mode="DELETE")
    stamp = DatabaseStamp(path, timeout_s=1)
    first = stamp()
    assert stamp() == first
    writer.execute("INSERT INTO t VALUES (1)")
    assert stamp() != first
    stamp.close()
    writer.close()
