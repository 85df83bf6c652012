"""A resource each process opens for itself, on first use after a fork."""

import os
from collections.abc import Callable
from typing import Any


class ProcessLocal:
    """The value open() gives, opened once in each process that asks for it.

    What a forked child inherits belongs to its parent: a SQLite connection whose POSIX locks
    are the parent's, an flock() descriptor shared with every sibling. The child opens its own,
    and keeps the inherited one referenced, never used nor closed: closing it would release
    the parent's locks."""

    def __init__(self, open: Callable[[], Any]) -> None:
        self._open = open
        self._value: Any = None
        self._pid: int | None = None
        self._inherited: list[Any] = []

    def get(self) -> Any:
        if self._pid != os.getpid():
            value = self._open()
            if self._value is not None:
                self._inherited.append(self._value)
            self._value, self._pid = value, os.getpid()
        return self._value

    def release(self) -> Any:
        """This process's value, forgotten (the next get() opens another), or None when it
        opened none."""
        if self._pid != os.getpid():
            return None
        value, self._value, self._pid = self._value, None, None
        return value
