"""Group commit: the writes waiting in one process at the same moment go into one transaction,
committed with one fsync, and each is answered only once that commit is on disk.

That is exactly as durable as a transaction per write: nothing is acknowledged before the
commit that holds it returns. It pays when several threads of a worker write at once
(gunicorn's gthread workers): SQLite takes one writer at a time, and most of a small write's
time is the fsync of its commit.

The first thread to find no writer at work becomes the leader: it takes what is waiting (its
own write included), applies each in a savepoint, so that one that fails leaves the others
whole, commits, and wakes their threads. Whatever arrived meanwhile is led by the first of it.
"""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection

# Writes in one transaction at most: a transaction holds SQLite's write lock, which other
# workers wait for, and the last write in a long batch waits for all before it.
MAX_BATCH = 32


class _Write:
    __slots__ = ("apply", "done", "leads", "result", "error")

    def __init__(
        self, apply: Callable[[Connection], Any], done: threading.Event | None = None
    ) -> None:
        self.apply = apply
        # Set when its batch is over; only a write that waits for a leader has one.
        self.done = done
        self.leads = False  # woken to lead the next batch, not with its result
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        """transaction(): a context manager giving a connection in a write transaction,
        committed when it exits without an exception, rolled back otherwise.
        on_commit(writes): told how many writes each committed transaction held."""
        self._transaction = transaction
        self._on_commit = on_commit
        self._lock = threading.Lock()
        self._waiting: list[_Write] = []
        self._leader_busy = False

    def run(self, apply: Callable[[Connection], Any]) -> Any:
        """apply(connection), in a transaction shared with the writes waiting beside it;
        returns its result, or raises its exception, once that transaction is over."""
        with self._lock:
            alone = not self._leader_busy  # then nothing waits either
            self._leader_busy = True
            write = _Write(apply, None if alone else threading.Event())
            if not alone:
                self._waiting.append(write)
        if alone:
            # The one write at work in the process (always so in a sync worker): committed
            # at once, without the Event a waiting write needs.
            try:
                self._commit([write])
            finally:
                self._pass_leadership()
        else:
            self._wait_or_lead(write)
        if write.error is not None:
            raise write.error
        return write.result

    def _wait_or_lead(self, write: _Write) -> None:
        assert write.done is not None  # a write that waits has its Event
        write.done.wait()
        if write.leads:  # woken to lead the next batch, its own write among it
            write.done.clear()
            write.leads = False
            self._lead(write)

    def _lead(self, own: _Write) -> None:
        assert own.done is not None  # a write that waits has its Event
        try:
            while not own.done.is_set():
                with self._lock:
                    batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    self._commit(batch)
                finally:
                    for write in batch:
                        write.done.set()  # type: ignore[union-attr]  # each of them waited
        finally:
            # Also when this thread is being torn down: the writes waiting must not wait on.
            self._pass_leadership()

    def _pass_leadership(self) -> None:
        with self._lock:
            if self._waiting:
                # Leadership passes to the first write still waiting.
                successor = self._waiting[0]
                successor.leads = True
                assert successor.done is not None  # it waits
                successor.done.set()
            else:
                self._leader_busy = False

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self._transaction() as connection:
                if len(batch) == 1:
                    batch[0].result = batch[0].apply(connection)
                else:
                    for write in batch:
                        try:
                            with connection.begin_nested():
                                write.result = write.apply(connection)
                        except Exception as error:  # noqa: BLE001 - handed to its own thread
                            write.error = error
        except BaseException as error:
            # The commit failed, or never happened: none of the batch holds.
            for write in batch:
                write.result, write.error = None, error
            if not isinstance(error, Exception):
                raise
            return
        if self._on_commit is not None:
            self._on_commit(len(batch))
