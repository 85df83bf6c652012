"""The rendered exports a worker keeps, so that a scrape of an unchanged group only sends
bytes: at most a number of bytes of them, the least recently scraped dropped first. Each
form of an export (plain, gzip) is an entry of its own, so a form nobody asks for goes first."""

import threading
from collections import OrderedDict


class ExportCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._bodies = OrderedDict()  # (group name, encoding) -> (version, body)
        self.size = 0
        self._lock = threading.Lock()  # a gthread worker's threads share it

    def get(self, group_name, version, encoding=None):
        """The body rendered for this version of the group, in this encoding, or None."""
        key = (group_name, encoding)
        with self._lock:
            entry = self._bodies.get(key)
            if entry is None or entry[0] != version:
                return None
            self._bodies.move_to_end(key)
            return entry[1]

    def put(self, group_name, version, body, encoding=None):
        key = (group_name, encoding)
        with self._lock:
            previous = self._bodies.pop(key, None)
            if previous is not None:
                self.size -= len(previous[1])
            if len(body) > self.max_bytes:
                return  # larger than all of it: rendered for every scrape
            self._bodies[key] = (version, body)
            self.size += len(body)
            while self.size > self.max_bytes:
                _, (_, dropped) = self._bodies.popitem(last=False)
                self.size -= len(dropped)
