"""Large buffers go back to the system when freed, so a worker's memory falls back after it
renders or compresses a large export, or reads a large push.

glibc serves allocations above its mmap threshold with mmap() and unmaps them when freed. But
the threshold rises to the size of the largest such buffer freed, up to 32 MiB, and from then on
buffers below it come from the heap, which keeps freed memory unless its top end is free: after
plain and gzip scrapes of a 10 MB export (the benchmark's 1,000 keys), master and 2 workers took
145 MiB of PSS, against 121 with the threshold fixed (measured alone; the benchmark's own figure
after its scrapes moved within its noise, 124 to 122). A fixed threshold keeps every buffer
above it mapped on its own.

The cost: a mapped buffer is faulted in page by page and zeroed. Making and freeing a 10 MB
buffer took 6.6 ms against 0.16 ms from the heap (timeit, the machine busy with a test suite).
Only rare work makes such buffers: rendering or compressing a large export, once per change of
its group (compressing 14 MB takes about 70 ms, store.py), and reading a push over 1 MiB.
"""

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt's parameter number (malloc.h).
_M_MMAP_THRESHOLD = -3
# Above the pieces a kept export is sent in (256 KiB), which then reuse the heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_buffers_when_freed(threshold=MMAP_THRESHOLD_BYTES):
    """Fix glibc's mmap threshold for this process and those it forks; elsewhere (musl, macOS)
    do nothing. Returns whether it was set."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not libc.mallopt(_M_MMAP_THRESHOLD, threshold):
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) failed: freed buffers may stay held", threshold)
        return False
    return True
