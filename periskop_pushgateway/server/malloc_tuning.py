"""Large buffers go back to the system when freed, so a worker's memory falls back after it
renders or compresses a large export, or reads a large push; and after such large work, the
memory its many small objects took (return_freed_memory).

glibc serves allocations above its mmap threshold with mmap() and unmaps them when freed. But
the threshold rises to the size of the largest such buffer freed, up to 32 MiB, and from then on
buffers below it come from the heap, which keeps freed memory unless its top end is free: a
worker that served large scrapes kept that memory for good. A fixed threshold keeps every
buffer above it mapped on its own.

The cost: a mapped buffer is faulted in page by page and zeroed, many times slower than one
from the heap. Only rare work makes such buffers: rendering or compressing a large export,
once per change of its group, and reading a push over 1 MiB.
"""

import ctypes
import ctypes.util
import functools
import logging
import platform

log = logging.getLogger(__name__)

# mallopt's parameter number (malloc.h).
_M_MMAP_THRESHOLD = -3
# Above the pieces a cached export is sent in (256 KiB), which then reuse the heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024


# Set by large work, cleared by the trim at the end of its request.
_trim_due = False


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c"))


def after_large_work() -> None:
    """Note that work that makes and frees many objects was done (loading a large push,
    rendering an export: large_work.py): return_freed_memory, at the end of the request, gives what
    it freed back to the system."""
    global _trim_due
    _trim_due = True


def return_freed_memory() -> bool:
    """Give the free pages of the heap back to the system (glibc's malloc_trim) when large work
    was done since the last call; returns whether it did.

    Otherwise the memory of a loaded push's or a rendered export's objects, freed in the middle
    of the heap, stays resident (tests/test_malloc_tuning.py). A trim costs a fraction of a
    millisecond: too much for every small push, which is why only large work asks for it."""
    global _trim_due
    if not _trim_due:
        return False
    _trim_due = False
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def return_large_buffers_when_freed(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process and those it forks; elsewhere (musl, macOS)
    do nothing. Returns whether it was set."""
    libc = _glibc()
    if libc is None:
        return False
    if not libc.mallopt(_M_MMAP_THRESHOLD, threshold):
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) failed: freed buffers may stay held", threshold)
        return False
    return True
