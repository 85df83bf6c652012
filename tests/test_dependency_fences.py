"""Where the gateway relies on a dependency's private code or format, a test here fails when the
installed dependency is not the one that code was written against (docs/performance.md, "Fast
paths and what they pay"). The fast paths' own differential tests check they agree with the
dependency's public behaviour; these check that the assumptions behind them still stand."""

import hashlib
import inspect
import textwrap

import gunicorn
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.sync import SyncWorker

# SHA-256 of gunicorn 27.0.1's SyncWorker.handle, from which server/durable_worker.py's
# DurableSyncWorker.handle was copied.
SYNC_WORKER_HANDLE = "74986e31b2140330d811a752844134e8ce7faf4c5b6342661cd38e136347b969"


def test_the_durable_worker_copies_the_installed_gunicorns_handle():
    source = textwrap.dedent(inspect.getsource(SyncWorker.handle))
    assert hashlib.sha256(source.encode()).hexdigest() == SYNC_WORKER_HANDLE, (
        f"gunicorn {gunicorn.__version__} changed SyncWorker.handle: carry the change into "
        "DurableSyncWorker.handle (server/durable_worker.py), then record the new digest here"
    )


def test_gunicorns_body_readers_say_where_a_body_ends_as_the_durable_worker_reads_them():
    # durable_worker._read_to_its_end: a ChunkedReader drops its parser after the last chunk,
    # a LengthReader counts down the bytes still due.
    assert "self.parser = None" in inspect.getsource(ChunkedReader)
    assert "self.length -= " in inspect.getsource(LengthReader)
