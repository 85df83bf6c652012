"""gunicorn's sync worker, with a flusher thread that acknowledges pushes once they are on disk
while the worker takes the next request (flush_later.py says why and what the app does).

Only what a handed-off request needs differs from gunicorn's SyncWorker: the app is wrapped
to offer FLUSH_LATER and to hand the request to the flusher when the app gave it a PendingFlush,
and handle() (gunicorn 27's, otherwise as it is) leaves that request's connection open for
the flusher to answer and close. Every other request is served exactly as SyncWorker serves
it. Measured in one run against the commit before (wrk -t2 -c16 -d5s, 2 workers, SQLite FULL,
three rounds), pushes from new clients: on this machine's disk, which flushes in about 0.3 ms,
within noise (small ones 750, 666 and 731/s before, 715, 668 and 608/s after; typical ones
445, 451 and 542/s against 431, 449 and 523/s), the idle time the workers left (15 to 17%)
spent on the thread's switches instead; with every flush 2 ms slower (bench/slow_flush.c),
small ones 314, 365 and 353/s against 545, 536 and 563/s, typical ones 256, 270 and 283/s
against 428, 462 and 384/s: the flush no longer holds the worker.
"""

import errno
import logging
import ssl
import threading
from datetime import datetime

from gunicorn import http, sock, util
from gunicorn.http import wsgi
from gunicorn.workers.sync import SyncWorker

from . import metrics
from .flush_later import FLUSH_LATER

log = logging.getLogger(__name__)

# Answers waiting for a flush, at most, per worker: past it the worker waits before it takes
# another request. Each holds its client's connection (a file descriptor) and its answer's
# few hundred bytes; a disk that stops answering holds at most this many connections open
# per worker until gunicorn's timeout ends the worker (and the clients push again).
MAX_WAITING = 64


class _HandedOff(Exception):  # noqa: N818 - a signal to handle(), not an error
    """Raised through gunicorn's handle_request once the flusher holds the request."""


class DurableSyncWorker(SyncWorker):
    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = self._handing_off(self.wsgi)

    def run(self):
        self._flusher = Flusher(self.log)
        try:
            super().run()
        finally:
            # Stopping (SIGTERM, max_requests): the answers waiting are flushed and sent.
            self._flusher.close(self.cfg.graceful_timeout)

    def _handing_off(self, app):
        def handing_off(environ, start_response):
            started = datetime.now()
            pending = []
            environ[FLUSH_LATER] = pending.append
            answer = app(environ, start_response)
            if not pending:
                return answer
            # gunicorn's start_response, as gunicorn passed it here: its Response's method.
            response = start_response.__self__
            self._flusher.add(_Answer(pending[0], answer, response, environ, started, self.cfg))
            raise _HandedOff

        return handing_off

    def handle(self, listener, client, addr):
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
            if not handed_off:
                util.close_graceful(client)


class _Answer:
    """A request handed off: its PendingFlush, the app's answer, and gunicorn's Response for it."""

    def __init__(self, pending, answer, response, environ, started, cfg):
        self.pending = pending
        self.answer = answer
        self.response = response
        self.environ = environ
        self.started = started
        self.cfg = cfg

    def send(self, gunicorn_log):
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
            util.close_graceful(client)


def _close(answer):
    if hasattr(answer, "close"):
        try:
            answer.close()
        except Exception:
            log.exception("closing an answer")


class Flusher:
    """A worker's thread that sends the answers waiting for a flush: each batch is what waited
    when the thread came round, and its first flush covers all of them."""

    def __init__(self, gunicorn_log):
        self._log = gunicorn_log
        self._waiting = []
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def add(self, answer):
        with self._changed:
            while len(self._waiting) >= MAX_WAITING:
                self._changed.wait()
            self._waiting.append(answer)
            self._changed.notify_all()

    def close(self, timeout):
        """Send what waits, then end the thread (waiting at most timeout seconds)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)

    def _run(self):
        while True:
            with self._changed:
                while not self._waiting and not self._closing:
                    self._changed.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting, []
                self._changed.notify_all()  # room for add()
            metrics.PUSHES_PER_FLUSH.observe(len(batch))
            for answer in batch:
                answer.send(self._log)
