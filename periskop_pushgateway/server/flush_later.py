"""How a push is acknowledged once its commit is on disk, with one flush for many pushes.

Under SQLITE_SYNCHRONOUS=FULL a push's commit must be flushed before the push is answered
(wal_sync.py). A sync worker that flushed in each request would flush once per push and sit
idle for each flush.
Instead, the gateway's gunicorn worker (durable_worker.py) offers to flush later: the app
commits, prepares its answer and hands a PendingFlush to the function the worker put in the
WSGI environ (a function, not a value the worker reads back, so that middleware that copies the
environ cannot lose it and leave a push acknowledged before its flush); the worker keeps the
answer and takes the next request. It flushes once for every answer it keeps, and only then
runs `accepted` (the push's log line and metrics) and sends the answer, or, when the flush
fails, the 503 of `failed`. Nothing is acknowledged before it is on disk.

Served any other way (Flask's test client, gthread workers, another WSGI server), FLUSH_LATER
is missing and the app flushes before it answers, as before.
"""

from collections.abc import Callable
from dataclasses import dataclass

# In the WSGI environ, set by a server that can flush and answer after the app has returned:
# a function the app calls with the PendingFlush its answer waits for.
FLUSH_LATER = "periskop_pushgateway.server.flush_later"


@dataclass(frozen=True)
class PendingFlush:
    # Makes the push's commit durable; raises (OperationalError) when the disk fails. Called
    # for each pending answer: one flush covers every commit made before it started, so the
    # calls after the first return at once (WalSync.flush_commits).
    flush: Callable[[], None]
    # Once on disk, before the answer is sent: the push's log line and metrics.
    accepted: Callable[[], None]
    # The answer instead, as a WSGI application, when the flush raised this exception.
    failed: Callable[[Exception], Callable]
