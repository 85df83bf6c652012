"""Large pieces of work one at a time in a worker: loading a large push, rendering an export;
the memory each freed is given back to the system once the request is over (malloc_tuning.py).

A worker's threads share its memory, and JSON makes up to 25 bytes of Python objects of each
byte of a push: four threads each loading a push of MAX_BODY_BYTES would hold four times what
one does. Both are CPU work under the GIL, so doing them one at a time costs no throughput.
"""

import contextlib
import threading
from collections.abc import Iterator

from .malloc_tuning import after_large_work

# Pushes larger than this are loaded one at a time, and what loading them freed is given back
# after their request; smaller ones (nearly all) at once, with no trim.
LARGE_BODY_BYTES = 256 * 1024

_one_at_a_time = threading.Lock()


@contextlib.contextmanager
def one_at_a_time(large: bool = True) -> Iterator[None]:
    """Hold the worker's lock for large work around the block (when `large`)."""
    if not large:
        yield
        return
    try:
        with _one_at_a_time:
            yield
    finally:
        after_large_work()
