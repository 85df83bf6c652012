"""gunicorn's sync worker that acknowledges pushes once they are on disk, flushing once for
every push it took in a row (flush_later.py says why and what the app does).

Only what a handed-off request needs differs from gunicorn's SyncWorker: the app is wrapped
to offer FLUSH_LATER and to keep the request's answer when the app gave it a PendingFlush, and
handle() (gunicorn 27's, otherwise as it is) leaves that request's connection open. The worker
takes every request already waiting to be accepted, then flushes once and sends the answers
held: before it waits for the next connection, when MAX_WAITING answers are held, and, should
a request hold it longer (a slow client, a large push), its answerer thread sends them once
the oldest has waited MAX_WAIT_SECONDS. Every other request is served as SyncWorker serves it.

A thread that flushed and answered each handed-off push while the worker took the next
request was slower: its wake-ups and turns at the GIL for every push cost more than the wait
for the disk it hid (docs/performance.md).

A handed-off answer's connection is closed as soon as its answer is sent, unless its client
sent more (close_after_answer), rather than after its client closes its end (gunicorn's linger,
up to 2 s); so is any other request's that was read to its end (a scrape, a push answered
without a flush). A connection that does get the linger (its client sent more, or the app
answered before reading the whole body) lingers in a thread of the worker's own (Lingerer):
neither the worker nor the answers held with it wait for that client.
"""

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from gunicorn import http, sock, util
from gunicorn.http import wsgi
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.sync import SyncWorker

from .. import metrics
from .flush_later import FLUSH_LATER, PendingFlush

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.http.message import Request

log = logging.getLogger(__name__)

# Answers held for a flush, at most, per worker: the worker flushes and sends them before it
# takes another request. Each holds its client's connection (a file descriptor) and its
# answer's few hundred bytes.
MAX_WAITING = 64
# The longest an answer is held while the worker serves another request: past it the worker's
# answerer thread flushes and sends. So a push is answered at most this long (and its flush,
# and one step of the worker that holds the GIL) after it was committed, whatever the next
# request does; a disk that stops answering holds at most MAX_WAITING connections open per
# worker until gunicorn's timeout ends the worker.
MAX_WAIT_SECONDS = 0.05
# Connections lingering at once (gunicorn's close_graceful: up to 2 s, 64 KiB read), at most,
# per worker, in its lingering thread: each holds a file descriptor until its client closes
# its end or the 2 s are over. Past it a connection lingers where it is closed, holding the
# worker (or the answers sent after it) as gunicorn's SyncWorker would.
MAX_LINGERING = 256
LINGER_SECONDS = 2.0
LINGER_BYTES = 65536


class _HandedOff(Exception):  # noqa: N818 - a signal to handle(), not an error
    """Raised through gunicorn's handle_request once the worker keeps the request's answer."""


class DurableSyncWorker(SyncWorker):
    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = self._handing_off(self.wsgi)

    def run(self) -> None:
        _lingerer()  # its thread started before the first request
        self._held = HeldAnswers(self.log)
        try:
            super().run()
        finally:
            # Stopping (SIGTERM, max_requests): the answers held are flushed and sent.
            self._held.close()
            _lingerer().close()

    def wait(self, timeout: int) -> list[socket.socket | int] | None:
        # No request waits to be accepted: flush once for the answers held, and send them.
        self._held.send()
        return super().wait(timeout)

    def _handing_off(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def handing_off(environ: "WSGIEnvironment", start_response: Any) -> Iterable[bytes]:
            started = datetime.now()
            pending: list[PendingFlush] = []
            environ[FLUSH_LATER] = pending.append
            answer = app(environ, start_response)
            if not pending:
                return answer
            # gunicorn's start_response, as gunicorn passed it here: its Response's method.
            response = start_response.__self__
            self._held.add(_Answer(pending[0], answer, response, environ, started, self.cfg))
            raise _HandedOff

        return handing_off

    def handle(self, listener: socket.socket, client: socket.socket, addr: Any) -> None:
        # gunicorn 27's SyncWorker.handle, but for the connection of a request handed off.
        req = None
        handed_off = False
        try:
            if self.cfg.is_ssl:
                client = sock.ssl_wrap_socket(client, self.cfg)
            parser = http.get_parser(self.cfg, client, addr)
            req = next(parser)
            self.handle_request(listener, req, client, addr)
        except _HandedOff:
            handed_off = True
        except http.errors.NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except ssl.SSLError as e:
            if e.args[0] == ssl.SSL_ERROR_EOF:
                self.log.debug("ssl connection closed")
                client.close()
            else:
                self.log.debug("Error processing SSL request.")
                self.handle_error(req, client, addr, e)
        except OSError as e:
            if e.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            else:
                if e.errno == errno.ECONNRESET:
                    self.log.debug("Ignoring connection reset")
                elif e.errno == errno.ENOTCONN:
                    self.log.debug("Ignoring socket not connected")
                else:
                    self.log.debug("Ignoring EPIPE")
        except BaseException as e:  # noqa: BLE001 - gunicorn's own answer for it
            self.handle_error(req, client, addr, e)
        finally:
            if handed_off:
                pass  # its answer, once sent, closes it
            elif _read_to_its_end(req):
                close_after_answer(client)
            else:
                _lingerer().linger(client)


class _Answer:
    """A request handed off: its PendingFlush, the app's answer, and gunicorn's Response for it."""

    def __init__(
        self,
        pending: PendingFlush,
        answer: Iterable[bytes],
        response: wsgi.Response,
        environ: "WSGIEnvironment",
        started: datetime,
        cfg: "Config",
    ) -> None:
        self.pending = pending
        self.answer = answer
        self.response = response
        self.environ = environ
        self.started = started
        self.cfg = cfg

    def send(self, gunicorn_log: "Logger") -> None:
        """Flush, then send the app's answer, or the 503 of a failed flush; close the
        connection either way."""
        response, answer = self.response, self.answer
        client = response.sock
        try:
            try:
                self.pending.flush()
            except Exception as error:  # noqa: BLE001 - the app's own answer for it
                _close(answer)
                response = wsgi.Response(response.req, client, self.cfg)
                response.force_close()
                answer = self.pending.failed(error)(self.environ, response.start_response)
            else:
                try:
                    self.pending.accepted()
                except Exception:
                    log.exception("after a push was flushed")
            for chunk in answer:
                response.write(chunk)
            response.close()
            gunicorn_log.access(response, response.req, self.environ, datetime.now() - self.started)
        except OSError as error:
            gunicorn_log.debug("Ignoring client disconnection: %s", error)
        except Exception:
            log.exception("answering a push after its flush")
        finally:
            _close(answer)
            close_after_answer(client)


def close_after_answer(client: socket.socket) -> None:
    """Close the connection of a request read to its end (a handed-off push is) without
    waiting for its client to close it.

    gunicorn's close_graceful lingers up to 2 s, reading until the client closes, so that
    unread request bytes do not make the kernel answer with a reset that could cut the
    response short. When nothing more is waiting (as nginx judges for its lingering close),
    the connection is closed at once, and a client that keeps its end open after the answer no
    longer holds the worker, and the answers sent after its own, for 2 s. Bytes already
    waiting (a pipelined request) still get the linger, in the lingering thread."""
    try:
        # A TLS socket too: shutdown() drops its TLS layer, so the peek reads the raw stream.
        client.shutdown(socket.SHUT_WR)
        client.setblocking(False)
        waiting = client.recv(1, socket.MSG_PEEK)
    except OSError:  # nothing waiting (BlockingIOError), or the client is gone
        waiting = b""
    if waiting:
        _lingerer().linger(client)
    else:
        client.close()


def _read_to_its_end(req: "Request | None") -> bool:
    """Whether nothing more of the request is due from its client: its body was read to its
    end, or it has none (gunicorn reads a request with neither Content-Length nor chunked as
    one of length 0, as RFC 9112 6.3 says). Then its connection closes as a handed-off one
    does (close_after_answer). A body the app did not read to its end, or a request that
    failed to parse, gets gunicorn's linger: bytes of it may still be on their way, and
    closing with them unread would reset the connection under the answer."""
    if req is None:
        return False
    reader = req.body.reader  # type: ignore[union-attr]  # a parsed request has its body
    if isinstance(reader, ChunkedReader):
        return reader.parser is None  # its last chunk was read
    return isinstance(reader, LengthReader) and reader.length == 0


def _close(answer: Iterable[bytes]) -> None:
    if hasattr(answer, "close"):
        try:
            answer.close()
        except Exception:
            log.exception("closing an answer")


class HeldAnswers:
    """The answers a worker keeps until a flush, and the thread that sends them when the worker
    does not within MAX_WAIT_SECONDS. Whichever sends takes all that are held: one flush covers
    them (WalSync.flush_commits)."""

    def __init__(self, gunicorn_log: "Logger") -> None:
        self._log = gunicorn_log
        self._answers: list[_Answer] = []
        self._sending = 0  # answers taken by a send() not yet over
        self._since: float | None = None  # when the oldest answer held was added (time.monotonic)
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="answerer", daemon=True)
        self._thread.start()

    def add(self, answer: _Answer) -> None:
        with self._changed:
            if not self._answers:
                self._since = time.monotonic()
                self._changed.notify()  # the thread's clock starts
            self._answers.append(answer)
            # Those the thread is sending count too: a disk that stops answering holds
            # MAX_WAITING connections of the worker's at most, not twice as many.
            full = len(self._answers) + self._sending >= MAX_WAITING
        if full:
            self.send()

    def send(self) -> None:
        """Flush, then send every answer held (each the 503 of a failed flush if it failed)."""
        with self._changed:
            batch, self._answers = self._answers, []
            if not batch:
                return
            self._sending += len(batch)
        try:
            metrics.PUSHES_PER_FLUSH.observe(len(batch))
            for answer in batch:
                answer.send(self._log)
        finally:
            with self._changed:
                self._sending -= len(batch)

    def close(self) -> None:
        """Send what is held, and end the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()
        self.send()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._answers and not self._closing:
                    self._changed.wait()
                if self._closing:
                    return
                late = self._since + MAX_WAIT_SECONDS - time.monotonic()  # type: ignore[operator]
                if late > 0:
                    self._changed.wait(late)
                    continue  # the worker may have sent them meanwhile
            self.send()


class Lingerer:
    """Closes connections as gunicorn's close_graceful does (the write side shut, what the
    client still sends read until it closes its end, LINGER_SECONDS or LINGER_BYTES at most,
    then closed), all at once in a thread of its own: no one waits for a lingering client."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        # Wakes the thread for a new connection, or to stop.
        self._wake, self._waker = socket.socketpair()
        for end in (self._wake, self._waker):
            end.setblocking(False)
        self._selector.register(self._wake, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._new: list[socket.socket] = []
        self._lingering = 0  # taken by linger() and not yet closed
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="lingerer", daemon=True)
        self._thread.start()

    def linger(self, client: socket.socket) -> None:
        """Close client once its end is closed, or the linger is over; returns at once unless
        MAX_LINGERING connections linger already."""
        try:
            client.shutdown(socket.SHUT_WR)
            client.setblocking(False)
        except OSError:  # the client is gone: nothing to wait for
            client.close()
            return
        with self._lock:
            taken = not self._closing and self._lingering < MAX_LINGERING
            if taken:
                self._new.append(client)
                self._lingering += 1
        if not taken:
            util.close_graceful(client)
            return
        with contextlib.suppress(BlockingIOError):  # full: the thread is woken already
            self._waker.send(b"\0")

    def close(self) -> None:
        """End the thread once every connection taken has been closed (LINGER_SECONDS at
        most)."""
        with self._lock:
            self._closing = True
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")
        self._thread.join(LINGER_SECONDS + 1)

    def _run(self) -> None:
        # Each connection lingering: [when its linger is over (time.monotonic), bytes read].
        lingering: dict[socket.socket, list[float]] = {}
        while True:
            with self._lock:
                new, self._new = self._new, []
                closing = self._closing
            now = time.monotonic()
            for client in new:
                lingering[client] = [now + LINGER_SECONDS, 0]
                self._selector.register(client, selectors.EVENT_READ)
            if closing and not lingering:
                return
            timeout = min(d for d, _ in lingering.values()) - now if lingering else None
            over = []
            for key, _ in self._selector.select(timeout):
                if key.fileobj is self._wake:
                    with contextlib.suppress(BlockingIOError):
                        self._wake.recv(4096)
                    continue
                client = cast(socket.socket, key.fileobj)
                try:
                    data = client.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                lingering[client][1] += len(data)
                if not data or lingering[client][1] >= LINGER_BYTES:
                    over.append(client)
            now = time.monotonic()
            over += [c for c, (deadline, _) in lingering.items() if deadline <= now]
            for client in set(over):
                del lingering[client]
                self._selector.unregister(client)
                with contextlib.suppress(OSError):
                    client.close()
            if over:
                with self._lock:
                    self._lingering -= len(set(over))


_LINGERER: Lingerer | None = None
_LINGERER_PID: int | None = None
_LINGERER_MADE = threading.Lock()


def _lingerer() -> Lingerer:
    """This process's Lingerer (a thread does not survive the fork of a worker)."""
    global _LINGERER, _LINGERER_PID
    with _LINGERER_MADE:
        if _LINGERER is None or _LINGERER_PID != os.getpid():
            _LINGERER, _LINGERER_PID = Lingerer(), os.getpid()
        return _LINGERER
