"""Keeping storage bounded without a separate daemon, and without a request waiting for it:
each process that serves pushes runs a housekeeping thread of its own, which prunes once per
interval and reports the keys the cap dropped meanwhile. At most one process of the gateway
prunes at a time (the backend's housekeeping turn); the others skip their turn."""

import logging
import os
import threading
import time
import weakref
from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..groups import describe_group
from ..storage.budget import Eviction, keep_within_budget
from .self_report import report

if TYPE_CHECKING:
    from ..storage.store import Store

log = logging.getLogger(__name__)

# How often the thread looks whether a prune is due: a due prune starts within this long.
TICK_SECONDS = 1.0


class Housekeeping:
    def __init__(self, store: "Store", interval_ns: int) -> None:
        self.store = store
        self.interval_ns = interval_ns
        self._due_ns = 0
        # group name -> keys dropped since the last report; requests add, the thread takes.
        self._dropped: Counter[str] = Counter()
        self._dropped_lock = threading.Lock()
        self._next_full_warning = 0.0
        self._thread_pid: int | None = None
        self._starting = threading.Lock()
        # Held while the thread works: a fork waits for it, so that a child never inherits a
        # lock (a connection pool's) that the thread held at that moment.
        self._working = threading.Lock()
        _all.add(self)
        # False: no thread is started, and run_if_due is called by whoever moves the store's
        # clock (tests that simulate days).
        self.in_background = True

    def note_push(self, group: str, dropped_keys: int) -> None:
        """Told after every accepted push: what the key cap dropped. Starts this process's
        housekeeping thread on the first push it serves (a forked worker has none)."""
        if dropped_keys:
            with self._dropped_lock:
                self._dropped[group] += dropped_keys
        if self._thread_pid != os.getpid() and self.in_background:
            self._start()

    def _start(self) -> None:
        with self._starting:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
            thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
            thread.start()

    def _loop(self) -> None:
        stop = threading.Event()  # never set: the thread ends with its process
        while not stop.wait(TICK_SECONDS):
            try:
                with self._working:
                    self.run_if_due()
            except SQLAlchemyError as error:
                # The database is unavailable: the next tick tries again.
                log.warning("housekeeping failed: %s", error)
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                log.exception("housekeeping failed")

    def run_if_due(self) -> dict[str, int] | None:
        """Keep the database within its budget on every call (every tick), and when the
        interval has passed since this process last looked, report the keys dropped meanwhile
        and prune; either only while this process holds housekeeping's turn. What it pruned,
        or None."""
        backend = self.store.backend
        backend.refill_disk_reserve()  # given back on a full disk (disk_reserve.py)
        now = self.store.clock()
        due = now >= self._due_ns
        if due:
            self._due_ns = now + self.interval_ns
            self.report_dropped_keys()
        elif backend.budget is None:
            return None  # nothing to do this tick: no turn taken
        with backend.housekeeping_turn() as taken:
            if not taken:
                return None
            self.keep_within_budget()
            return self.prune() if due else None

    def run(self) -> dict[str, int]:
        """Prune now, keep the database within its budget, and report the keys dropped
        since the last report."""
        pruned = self.prune()
        self.keep_within_budget()
        self.report_dropped_keys()
        return pruned

    def keep_within_budget(self) -> Eviction | None:
        """Evict occurrences when the database is near its budget (storage/budget.py), and
        say so in the log, the metrics and the gateway's own export."""
        budget = self.store.backend.budget
        if budget is None:
            return None
        started = time.monotonic()
        eviction = keep_within_budget(self.store, budget)
        if eviction is None:
            return None
        if not eviction.occurrences:
            # Said once a minute, not on every tick while it lasts.
            if time.monotonic() >= self._next_full_warning:
                self._next_full_warning = time.monotonic() + 60
                log.warning(
                    "the database holds %s bytes, near its budget of %s "
                    "(PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES less the WAL's limit), and no "
                    "occurrences are left to evict: pushes that add keys or counters get 507 "
                    "once the budget is reached; raise the budget or delete groups",
                    f"{eviction.used_before:,}",
                    f"{budget.limit_bytes:,}",
                )
            return eviction
        metrics.PRUNED_ROWS.labels("budget_occurrences").inc(eviction.occurrences)
        groups = ", ".join(describe_group(group) for group in eviction.groups) or "no group"
        message = (
            f"the database held {eviction.used_before:,} bytes, near its budget of "
            f"{budget.limit_bytes:,} (PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES less the WAL's "
            f"limit): evicted the {eviction.occurrences:,} oldest occurrences of {groups} "
            f"(their counts stay), down to {eviction.used_after:,} bytes"
        )
        if eviction.used_after > budget.evict_down_to_bytes:
            message += (
                "; what is left is keys and counters, which are not evicted: pushes that add "
                "more get 507 once the budget is reached"
            )
        log.warning("%s seconds=%.1f", message, time.monotonic() - started)
        report(self.store, "DatabaseBudget", message, count=eviction.occurrences)
        return eviction

    def prune(self) -> dict[str, int]:
        started = time.monotonic()
        pruned = self.store.prune()
        for kind, count in pruned.items():
            metrics.PRUNED_ROWS.labels(kind).inc(count)
        if any(pruned.values()):
            done = " ".join(f"{name}={count}" for name, count in pruned.items())
            log.info("pruned %s seconds=%.1f", done, time.monotonic() - started)
        return pruned

    def report_dropped_keys(self) -> None:
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, Counter()
        for group, count in sorted(dropped.items()):
            message = (
                f"{count} new aggregation keys pushed to {describe_group(group)} were not "
                f"stored: the group holds its maximum of "
                f"{self.store.settings.max_keys_per_group} keys"
            )
            log.warning("%s", message)
            report(self.store, "KeysDropped", message, count=count)


_all: "weakref.WeakSet[Housekeeping]" = weakref.WeakSet()
_paused: list[Housekeeping] = []


def _before_fork() -> None:
    for housekeeping in list(_all):
        housekeeping._working.acquire()
        _paused.append(housekeeping)


def _after_fork() -> None:
    while _paused:
        _paused.pop()._working.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
