"""gunicorn's production settings for the gateway, in one place: `periskop-pushgateway serve` and
the repository's gunicorn.conf.py both take them from here."""

import gc
import multiprocessing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..config import setting
from ..log_format import gunicorn_logconfig
from .malloc_tuning import return_large_buffers_when_freed

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

DEFAULT_BIND = "0.0.0.0:7878"
DEFAULT_TIMEOUT = 30
# Threads per worker. One (gunicorn's sync workers) is the fastest (docs/performance.md):
# pushes are CPU work under Python's GIL, and threads of one worker only take turns at it. More
# (gunicorn's gthread workers) keep clients' connections open and let the pushes a worker's
# threads hold at the same moment share one SQLite commit (group_commit.py).
DEFAULT_THREADS = 1

# The client as nginx saw it (X-Forwarded-For), then gunicorn's peer, the worker that answered,
# and how long the request took in milliseconds: enough to find a slow or failing pusher, or a
# stuck worker, from the access log alone.
ACCESS_LOG_FORMAT = (
    '%(h)s fwd=%({x-forwarded-for}i)s pid=%(p)s %(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
)


def default_workers() -> int:
    # SQLite takes one writer at a time; a few workers keep scrapes and pushes flowing
    # without queueing many of them on its lock.
    return min(4, max(2, multiprocessing.cpu_count()))


def gunicorn_settings(
    bind: Iterable[str] = (DEFAULT_BIND,),
    workers: int | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    threads: int = DEFAULT_THREADS,
) -> dict[str, Any]:
    """gunicorn setting name -> value."""
    settings: dict[str, Any] = {
        "bind": list(bind),
        "workers": workers or default_workers(),
        # nginx in front buffers slow clients, so a worker (or a thread) is only ever busy
        # with a complete request, and a push is one short SQLite transaction.
        # The sync worker flushes once for the pushes it takes in a row (durable_worker.py);
        # gthread's threads flush their own.
        "worker_class": (
            "gthread"
            if threads > 1
            else "periskop_pushgateway.server.durable_worker.DurableSyncWorker"
        ),
        "threads": threads,
        "timeout": timeout,
        # On SIGTERM or SIGHUP a worker finishes the request it holds (at most `timeout`
        # long) before it exits: an acknowledged push is never cut short.
        "graceful_timeout": timeout,
        # The app (and its database migration) is loaded once, before the workers fork.
        "preload_app": True,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        # Forwarded headers are trusted by the app alone, and only as far as
        # PERISKOP_PUSHGATEWAY_PROXY_HOPS says (werkzeug's ProxyFix); gunicorn must not
        # trust X-Forwarded-Proto from any local process on its own.
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        # gunicorn's control socket sits at one path per user: a second gateway on the same
        # machine would take it over, and nothing here needs it.
        "control_socket_disable": True,
        "pre_fork": _before_fork,
        "child_exit": _worker_exited,
    }
    logconfig = gunicorn_logconfig(setting("LOG_FORMAT"))
    if logconfig:
        settings["logconfig_dict"] = logconfig
    return settings


def _before_fork(_arbiter: "Arbiter", _worker: "Worker") -> None:
    # Set in the master, so every worker forks with it (malloc_tuning.py).
    return_large_buffers_when_freed()
    # The workers share the preloaded app's memory with the master until they write to a
    # page, and the garbage collector writes to every object it visits: frozen, the objects
    # made before the fork are never visited, and their pages stay shared.
    gc.freeze()


def _worker_exited(_arbiter: "Arbiter", worker: "Worker") -> None:
    from ..metrics import worker_exited

    worker_exited(worker.pid)  # type: ignore[arg-type]  # an int once forked; the stubs say str
