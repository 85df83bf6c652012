"""Keeping storage bounded without a separate daemon: each worker prunes at most once per
interval, right after a push it served, and reports the keys the cap dropped meanwhile."""

import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING

from .. import metrics
from ..groups import describe_group
from .self_report import report

if TYPE_CHECKING:
    from ..storage.store import Store

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, store: "Store", interval_ns: int) -> None:
        self.store = store
        self.interval_ns = interval_ns
        self._due_ns = 0
        self._dropped: Counter[str] = Counter()  # group name -> keys dropped since the last report
        # One thread of a worker prunes; the others go on answering.
        self._running = threading.Lock()

    def note_dropped_keys(self, group: str, count: int) -> None:
        if count:
            self._dropped[group] += count

    def after_push(self) -> None:
        now = self.store.clock()
        if now >= self._due_ns and self._running.acquire(blocking=False):
            try:
                if now >= self._due_ns:  # no other thread pruned meanwhile
                    self._due_ns = now + self.interval_ns
                    self.run()
            finally:
                self._running.release()

    def run(self) -> dict[str, int]:
        pruned = self.store.prune()
        for kind, count in pruned.items():
            metrics.PRUNED_ROWS.labels(kind).inc(count)
        if any(pruned.values()):
            log.info("pruned %s", " ".join(f"{name}={count}" for name, count in pruned.items()))
        dropped, self._dropped = self._dropped, Counter()
        for group, count in sorted(dropped.items()):
            message = (
                f"{count} new aggregation keys pushed to {describe_group(group)} were not "
                f"stored: the group holds its maximum of "
                f"{self.store.settings.max_keys_per_group} keys"
            )
            log.warning("%s", message)
            report(self.store, "KeysDropped", message, count=count)
        return pruned
