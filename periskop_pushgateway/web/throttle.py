"""What the workers of one gateway share about credentials, so that guessing costs the gateway a
bounded number of slow password hash checks however many workers and addresses it has:

- the failed checks of each (user name, client address) within the last minute: one that
  failed too often is refused before it costs another check, while other user names from the
  same address still get theirs;
- a budget of hash checks per second for the whole gateway (a token bucket): past it,
  credentials not accepted before are refused without a check;
- the credentials accepted so far, as keyed digests (auth.py), so that a client accepted by
  one worker passes every worker without a check or the budget.

They live in a small SQLite file in a temporary directory the gateway makes before its workers
fork (gunicorn preloads the app), each worker with its own connection. When that file cannot be
used (a full disk, a lock held too long, damage), a worker keeps the same records in its own
memory for a while and says so: the bounds then hold per worker rather than for the gateway,
no one is locked out, and no request fails for it.
"""

import hashlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..temporary_directory import own_temporary_directory

log = logging.getLogger(__name__)

# Failed checks kept for the whole gateway, the oldest dropped first. The budget of checks
# keeps far fewer within a window (60 × AUTH_CHECKS_PER_SECOND plus a burst); this holds
# should it be set very high. About 80 bytes each in the file: 0.8 MB at the bound.
MAX_FAILURES_KEPT = 10_000
# Seconds' worth of checks the budget lets through at once after a quiet spell (the
# bucket's size), so that the workers' first checks after a start are not refused.
BURST_SECONDS = 5
# How long a worker keeps its own records once the shared file failed it.
_RETRY_SHARED_SECONDS = 30
# How long a worker waits for another's transaction on the file (each takes microseconds).
_BUSY_TIMEOUT_SECONDS = 0.5
_FILE_NAME = "credentials.sqlite3"
# A temporary directory's name holds the pid of the process that made it, which removes it.
_TEMPORARY_PREFIX = "periskop-pushgateway-credentials-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (key BLOB NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_of_key ON failures (key, at);
CREATE INDEX IF NOT EXISTS failures_by_time ON failures (at);
CREATE TABLE IF NOT EXISTS accepted (digest BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget (
    id INTEGER PRIMARY KEY CHECK (id = 0), tokens REAL NOT NULL, at REAL NOT NULL
);
"""
# Accepted digests kept: one right pair per role exists, so more are never needed.
_MAX_ACCEPTED = 64

T = TypeVar("T")


def failure_key(username: str | None, address: str | None) -> bytes:
    """The record key of a user name from a client address: fixed-size, however long either
    is (a forwarded address is whatever the client wrote)."""
    name = (username or "").encode()
    pair = len(name).to_bytes(4, "big") + name + (address or "").encode()
    return hashlib.blake2b(pair, digest_size=16).digest()


@dataclass(frozen=True)
class Admission:
    """What to do with credentials not accepted by this worker before."""

    accepted: bytes | None = None  # the digest accepted before by another worker: let in
    wait: int = 0  # > 0: refuse them for this many seconds, without a check
    reason: str = ""  # why they wait: "failures" (of their key) or "budget"


class CredentialRecords:
    """Failed checks per key within the last window_seconds (max_failures of them make a key
    wait until the oldest leaves the window), a token bucket of checks_per_second hash checks,
    and the digests of credentials accepted; in the SQLite file at path (None: this process's
    memory only)."""

    def __init__(
        self,
        path: Path | None,
        max_failures: int,
        checks_per_second: float,
        window_seconds: float = 60,
        max_failures_kept: int = MAX_FAILURES_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.max_failures = max_failures
        self.checks_per_second = checks_per_second
        self.capacity = max(1.0, checks_per_second * BURST_SECONDS)
        self.window_seconds = window_seconds
        self.max_failures_kept = max_failures_kept
        # CLOCK_MONOTONIC is one clock for every process of the machine.
        self.clock = clock
        self._lock = threading.Lock()  # a gthread worker's threads share the connections
        self._shared: sqlite3.Connection | None = None
        self._shared_pid = 0
        self._shared_failed_at: float | None = None
        self._local: sqlite3.Connection | None = None
        if path is not None:
            # Made now, in the process that forks the workers; its connection is not kept, as
            # a SQLite connection must not cross a fork.
            try:
                self._open(path).close()
            except sqlite3.Error as error:
                log.warning(
                    "credential records: no shared file (%s): each worker keeps its own", error
                )
                self.path = None

    @property
    def shared(self) -> bool:
        """Whether the records are the gateway's at the moment, not this worker's own."""
        return self.path is not None and self._shared_failed_at is None

    def admit(self, key: bytes, digests: Sequence[bytes], checks: int = 1) -> Admission:
        """Whether credentials may cost `checks` hash checks: let in when one of their
        digests was accepted before; else refused while their key has max_failures failures
        in the window or the budget has fewer than `checks` left; else the checks are taken
        from the budget."""

        def admit(db: sqlite3.Connection) -> Admission:
            for digest in digests:
                if db.execute("SELECT 1 FROM accepted WHERE digest = ?", (digest,)).fetchone():
                    return Admission(accepted=digest)
            wait = self._failures_wait(db, key)
            if wait:
                return Admission(wait=wait, reason="failures")
            wait = self._take_checks(db, checks)
            if wait:
                return Admission(wait=wait, reason="budget")
            return Admission()

        return self._run(admit)

    def seconds_to_wait(self, key: bytes) -> int:
        """0 while the key may be checked; else whole seconds until it may again."""
        return self._run(lambda db: self._failures_wait(db, key))

    def record_failure(self, key: bytes) -> bool:
        """Count a failed check of the key; True when it makes the key wait."""

        def record(db: sqlite3.Connection) -> bool:
            now = self.clock()
            db.execute("DELETE FROM failures WHERE at <= ?", (now - self.window_seconds,))
            db.execute("INSERT INTO failures (key, at) VALUES (?, ?)", (key, now))
            db.execute(
                "DELETE FROM failures WHERE rowid IN (SELECT rowid FROM failures ORDER BY at "
                "LIMIT max(0, (SELECT count(*) FROM failures) - ?))",
                (self.max_failures_kept,),
            )
            return self._recent_failures(db, key, now) == self.max_failures

        return self._run(record)

    def record_accepted(self, digest: bytes) -> None:
        def record(db: sqlite3.Connection) -> None:
            (count,) = db.execute("SELECT count(*) FROM accepted").fetchone()
            if count < _MAX_ACCEPTED:
                db.execute("INSERT OR IGNORE INTO accepted (digest) VALUES (?)", (digest,))

        self._run(record)

    def failures_kept(self) -> int:
        return self._run(lambda db: db.execute("SELECT count(*) FROM failures").fetchone()[0])

    def _failures_wait(self, db: sqlite3.Connection, key: bytes) -> int:
        now = self.clock()
        if self._recent_failures(db, key, now) < self.max_failures:
            return 0
        # The oldest of the last max_failures failures frees a place when it leaves the window.
        (oldest,) = db.execute(
            "SELECT at FROM failures WHERE key = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
            (key, self.max_failures - 1),
        ).fetchone()
        return max(1, math.ceil(oldest + self.window_seconds - now))

    def _recent_failures(self, db: sqlite3.Connection, key: bytes, now: float) -> int:
        (count,) = db.execute(
            "SELECT count(*) FROM failures WHERE key = ? AND at > ?",
            (key, now - self.window_seconds),
        ).fetchone()
        return int(count)

    def _take_checks(self, db: sqlite3.Connection, checks: int) -> int:
        """0 when `checks` tokens were taken from the bucket; else whole seconds until there
        are as many (none taken)."""
        now = self.clock()
        row = db.execute("SELECT tokens, at FROM budget WHERE id = 0").fetchone()
        tokens, then = row if row else (self.capacity, now)
        tokens = min(self.capacity, tokens + max(0.0, now - then) * self.checks_per_second)
        if tokens < checks:
            return max(1, math.ceil((checks - tokens) / self.checks_per_second))
        db.execute(
            "INSERT OR REPLACE INTO budget (id, tokens, at) VALUES (0, ?, ?)",
            (tokens - checks, now),
        )
        return 0

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self.path is not None and self._shared_usable():
                try:
                    return self._transaction(self._shared_connection(self.path), work)
                except sqlite3.Error as error:
                    self._shared_failed(error)
            return self._transaction(self._local_connection(), work)

    def _shared_usable(self) -> bool:
        if self._shared_failed_at is None:
            return True
        if self.clock() - self._shared_failed_at < _RETRY_SHARED_SECONDS:
            return False
        self._shared_failed_at = None
        log.info("credential records: trying the gateway's shared file %s again", self.path)
        return True

    def _shared_failed(self, error: sqlite3.Error) -> None:
        self._shared_failed_at = self.clock()
        if self._shared is not None:
            self._shared.close()
        self._shared = None
        log.warning(
            "credential records: the gateway's shared file %s failed (%s): this worker keeps "
            "its own for %d s, so their bounds hold per worker meanwhile",
            self.path,
            error,
            _RETRY_SHARED_SECONDS,
        )

    def _shared_connection(self, path: Path) -> sqlite3.Connection:
        if self._shared is None or self._shared_pid != os.getpid():
            # A connection inherited from before a fork belongs to the parent: never used.
            self._shared = self._open(path)
            self._shared_pid = os.getpid()
        return self._shared

    def _local_connection(self) -> sqlite3.Connection:
        if self._local is None:
            self._local = self._open(None)
        return self._local

    def _open(self, path: Path | None) -> sqlite3.Connection:
        db = sqlite3.connect(
            ":memory:" if path is None else path,
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        if path is not None:
            # The records matter only while the gateway runs: no flush to disk is needed,
            # and the write-ahead log goes back to 1 MB after each checkpoint.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("PRAGMA journal_size_limit = 1048576")
        db.executescript(_SCHEMA)
        return db

    def _transaction(self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result


def shared_records_path() -> Path | None:
    """A file in a new temporary directory for the records of this gateway's workers, removed
    when this process exits (and, when left by a gateway that was killed, by the next to
    start); None when none can be made."""
    try:
        directory = own_temporary_directory(_TEMPORARY_PREFIX)
    except OSError as error:
        log.warning("credential records: no shared file (%s): each worker keeps its own", error)
        return None
    return directory / _FILE_NAME
