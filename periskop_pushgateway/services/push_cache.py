"""The push bodies this worker accepted lately, with what they loaded to (but for the text of
each occurrence, which only a write needs), so that a body pushed again (a process pushing its
unchanged state once more, the steady load of a push gateway) is neither validated again nor
made to wait for the write lock; and the highest
counts processes pushed lately, so that a push arriving after a later state of its process
is not made to wait for the write lock either."""

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..second_sighting import SecondSightingCache

if TYPE_CHECKING:
    from ..storage.store import Verdict


class Remembered:
    """A body accepted twice: what it loaded to, and the store's verdict on it (a
    store.Verdict), if any."""

    __slots__ = ("push", "verdict")

    def __init__(self, push: dict[str, Any]) -> None:
        self.push = push
        self.verdict: Verdict | None = None


class PushCache:
    """Loaded pushes by (group, body), least recent dropped first, within a number of entries
    and of body bytes: a body is noted when first accepted, and what it loaded to is kept with
    it when it is accepted again.

    Only pushes from an identified process are kept: loading such a body always gives the
    same push (occurrences pushed without a uuid get one derived from their content), while an
    anonymous push without uuids gets fresh ones every time.

    A body found here may still change something now (its counters expired, its errors were
    resolved or wiped), and one accepted by another worker is not here: the store decides
    either way; this only saves the loading, and chooses which transaction is tried first.
    """

    def __init__(
        self,
        max_entries: int = 256,
        max_body_bytes: int = 8 * 1024 * 1024,
        max_counted_keys: int = 4096,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        # key (below) -> Remembered. Of the bodies noted, at most 8 MiB per worker are held
        # with what they loaded to (without the occurrences' texts). A note holds a 64-bit
        # hash of the body, not the body, and counts no body bytes: another body of the same
        # size and hash (about one chance in 2^64) would only be kept one acceptance early.
        self._pushes = SecondSightingCache(
            max_entries,
            max_body_bytes,
            size_of=lambda key, noted: 0 if noted else len(key[1]),
            note_of=lambda key: (key[0], len(key[1]), hash(key[1])),
        )
        # hash((group, target_uuid, key)) -> the highest count accepted, the least recently
        # pushed first: under 1 MiB at the bound, whatever the number of keys per process
        # (docs/bounds.md). An out-of-order push comes within moments of the later state of
        # its process, so the last keys pushed are enough to notice it. A collision only
        # makes the store try a read transaction first that finds the push does change
        # something.
        self.max_counted_keys = max_counted_keys
        self._highest: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()  # a gthread worker's threads share it

    @staticmethod
    def key(group: str, body: bytes) -> tuple[str, bytes]:
        """What a body is found by: the group and the body itself, compared byte for byte.
        Every push is looked up, so the lookup uses Python's own hash of bytes (computed once
        per body, a third of a SHA-256's cost); a body found is then compared whole."""
        return (group, body)

    def get(self, key: tuple[str, bytes]) -> Remembered | None:
        """The Remembered of this body (what it loaded to, without its occurrences' "body"
        texts), or None."""
        return self._pushes.get(key)  # a note's key never equals a body's

    def counts_seen_already(self, group: str, push: dict[str, Any]) -> bool:
        """Whether every key of this identified push has a count no higher than one this
        worker accepted from the same process lately."""
        target, highest = push["target_uuid"], self._highest
        return all(
            aggregate["total_count"]
            <= highest.get(hash((group, target, aggregate["aggregation_key"])), -1)
            for aggregate in push["aggregates"]
        )

    def note_counts(self, group: str, push: dict[str, Any]) -> None:
        """Remember the counts of an accepted push from an identified process."""
        target = push["target_uuid"]
        if not target or len(push["aggregates"]) > self.max_counted_keys:
            return
        with self._lock:
            highest = self._highest
            for aggregate in push["aggregates"]:
                key = hash((group, target, aggregate["aggregation_key"]))
                highest[key] = max(highest.pop(key, -1), aggregate["total_count"])
            while len(highest) > self.max_counted_keys:
                highest.popitem(last=False)

    def add(self, key: tuple[str, bytes], push: dict[str, Any]) -> None:
        """Note a body (a key) accepted from an identified process; what it loaded to is kept
        with it from its second acceptance on (most bodies are pushed once)."""
        if push["target_uuid"]:
            self._pushes.offer(key, lambda: Remembered(_without_texts(push)))

    def __len__(self) -> int:
        """Bodies held and noted."""
        return len(self._pushes)


# What of a normalized occurrence only a write needs: its exported JSON, or what renders it.
_TEXT_ENTRIES = ("body", "body_bytes", "pending")


def _without_texts(push: dict[str, Any]) -> dict[str, Any]:
    """The push with each occurrence's exported JSON left out: most of a loaded push's size,
    and needed only to write it, when the body is loaded again anyway."""
    return {
        **push,
        "aggregates": [
            {
                **aggregate,
                "occurrences": [
                    {name: value for name, value in occurrence.items() if name not in _TEXT_ENTRIES}
                    for occurrence in aggregate["occurrences"]
                ],
            }
            for aggregate in push["aggregates"]
        ],
    }
