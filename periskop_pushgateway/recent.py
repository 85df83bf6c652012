"""Which push bodies this worker accepted lately, so that a body pushed again (a process
pushing its unchanged state once more) can be looked at in a read transaction first."""

import hashlib
from collections import OrderedDict


class RecentPushes:
    """The digests of the last `size` push bodies accepted, per group, least recent dropped.

    Only a hint: a body seen here may change something now (its counters expired, its errors
    were resolved or wiped), and one pushed to another worker is not here. The store is right
    either way; the hint only chooses which transaction it tries first.
    """

    def __init__(self, size=1024):
        self.size = size
        self._digests = OrderedDict()

    @staticmethod
    def digest(group, body):
        hasher = hashlib.blake2b(group.encode(), digest_size=16)
        hasher.update(b"\0")
        hasher.update(body)
        return hasher.digest()

    def __contains__(self, digest):
        return digest in self._digests

    def add(self, digest):
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        while len(self._digests) > self.size:
            self._digests.popitem(last=False)
