"""The rendered exports a worker keeps, so that a scrape of an unchanged group only sends
bytes: at most a number of bytes of them, the least recently scraped dropped first."""

from collections import OrderedDict


class ExportCache:
    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._bodies = OrderedDict()  # group name -> (version, body)
        self.size = 0

    def get(self, group_name, version):
        """The body rendered for this version of the group, or None."""
        entry = self._bodies.get(group_name)
        if entry is None or entry[0] != version:
            return None
        self._bodies.move_to_end(group_name)
        return entry[1]

    def put(self, group_name, version, body):
        previous = self._bodies.pop(group_name, None)
        if previous is not None:
            self.size -= len(previous[1])
        if len(body) > self.max_bytes:
            return  # larger than all of it: rendered for every scrape
        self._bodies[group_name] = (version, body)
        self.size += len(body)
        while self.size > self.max_bytes:
            _, (_, dropped) = self._bodies.popitem(last=False)
            self.size -= len(dropped)
