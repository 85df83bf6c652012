"""The occurrences this worker loaded lately, by their exact pushed form, so that one pushed
again is not validated again.

A client pushes its whole cumulative state every time: a web app in an error storm pushes after
every error, and each such push repeats up to 9 of each key's last 10 occurrences. Writing
the parsed occurrence back with orjson and finding it here costs a small part of loading it.

The key is the occurrence as orjson writes it back from the parsed document: equal bytes are
equal JSON values of equal types in the same order, so loading them gives the same result.
(Python's == would not do: it takes 1, 1.0 and true for one another, which a header value
exports differently.) Loading depends on the limits only, which are fixed per app; a push's
receipt time is applied after loading (normalize.py).

A loaded occurrence is shared by every push that repeats it from then on: nothing may change
one (scrubber.py and fitting.py change copies).
"""

from collections.abc import Callable
from typing import Any

import orjson

from ..second_sighting import SecondSightingCache

# A typical occurrence (981 bytes pushed: a 20-line stack trace, a request with three headers)
# takes about 4 KiB here, its pushed form and loaded objects together: at the bound in
# entries about 3.5 MiB per worker, enough for the last 10 occurrences of 51 keys.
DEFAULT_MAX_ENTRIES = 512
# Larger occurrences are bounded by their pushed bytes (512 KiB altogether), which can take 13
# times as much once loaded: each line of a stack trace is an object of its own. The worst,
# occurrences of 33 stack traces (a cause chain) of 1,000 distinct two-character lines each:
# about 11 MiB more resident per worker.
DEFAULT_MAX_BYTES = 512 * 1024


class OccurrenceCache:
    """Loaded occurrences by pushed form, the least recently loaded dropped first, within a
    number of entries and of pushed bytes: an occurrence's pushed form is noted when first
    loaded, and what it loaded to is kept when loaded a second time."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        # pushed form -> loaded occurrence; a pushed form counts its own bytes.
        self._loaded = SecondSightingCache(
            max_entries, max_bytes, size_of=lambda pushed, _noted: len(pushed)
        )

    def load(self, data: Any, load: Callable[[Any], Any]) -> Any:
        """load(data), or what it gave for the same pushed form lately (seen twice before).
        What load raises is raised, and nothing is kept."""
        try:
            pushed = orjson.dumps(data)
        except TypeError:  # nested deeper than orjson writes (a long cause chain): not kept
            return load(data)
        loaded = self._loaded.get(pushed)
        if loaded is None:
            loaded = load(data)
            self._loaded.offer(pushed, lambda: loaded)
        return loaded

    def __len__(self) -> int:
        return len(self._loaded)
