"""A bounded cache that keeps a value only from the second time its key is offered."""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

# Stands for the value of a key offered once.
_NOTED = object()


class SecondSightingCache:
    """Values by key, kept from the second time a key is offered: the first time, only a note
    of it is made. Most keys are seen once (a batch job's push at exit, the new occurrences of
    an error storm), and keeping each of their values would cost a copy of it and a walk of
    Python's garbage collector over it as it aged out.

    Bounded in entries (notes included) and in size; the least recently offered go first.
    note_of(key) is what a note is filed under (the key itself, or a smaller stand-in);
    size_of(key, noted) what an entry counts against max_size, as a note or as a value. A key
    whose value would count more than max_size is never kept.

    get() takes no lock: a gthread worker's threads only take turns to change it."""

    def __init__(
        self,
        max_entries: int,
        max_size: int,
        size_of: Callable[[Any, bool], int],
        note_of: Callable[[Any], Any] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.max_size = max_size
        self._size_of = size_of
        self._note_of = note_of or (lambda key: key)
        self._entries: OrderedDict[Any, Any] = OrderedDict()  # key -> value, note_of(key) -> _NOTED
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        value = self._entries.get(key)
        return None if value is _NOTED else value

    def offer(self, key: Any, make_value: Callable[[], Any]) -> None:
        """Note the key, or keep make_value() for it when it was noted before."""
        if self._size_of(key, False) > self.max_size:
            return
        note = self._note_of(key)
        with self._lock:
            entries = self._entries
            value = entries.pop(key, None)
            if value is not None and value is not _NOTED:
                entries[key] = value  # kept already: now the most recent
            elif value is _NOTED or entries.pop(note, None) is _NOTED:
                self._size += self._size_of(key, False) - self._size_of(key, True)
                entries[key] = make_value()
            else:
                entries[note] = _NOTED
                self._size += self._size_of(key, True)
            while len(entries) > self.max_entries or self._size > self.max_size:
                dropped, value = entries.popitem(last=False)
                self._size -= self._size_of(dropped, value is _NOTED)

    def __len__(self) -> int:
        return len(self._entries)
