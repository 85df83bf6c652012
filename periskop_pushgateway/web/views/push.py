"""POST /errors and POST /services/<name>/errors: accept a client's cumulative state."""

import logging
import time
from functools import partial

import orjson
from flask import Blueprint, current_app, request
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from ... import metrics
from ...errors import InvalidPush, PushRejected, database_unavailable
from ...log_format import push_line
from ...server.flush_later import FLUSH_LATER, PendingFlush
from ...server.large_work import LARGE_BODY_BYTES, one_at_a_time
from ...services.push_cache import PushCache
from ...services.self_report import report_rejection
from ...wire.body import parse_push_document, read_push_body
from . import DEFAULT_GROUP, current_gateway

log = logging.getLogger(__name__)

# The pushes_total outcome of each rejection status.
OUTCOMES = {
    400: "invalid",
    403: "too_many_groups",
    408: "timed_out",
    413: "too_large",
    415: "unsupported_encoding",
}

blueprint = Blueprint("push", __name__)

# The child counted for every push accepted, looked up once.
_ACCEPTED = metrics.PUSHES.labels("accepted")


@blueprint.post("/errors")
@blueprint.post("/services/<group:group>/errors")
def push(group=DEFAULT_GROUP):
    started = time.perf_counter()
    gateway = current_gateway()
    try:
        # Clients send JSON under any content type (the Python client sends none, the Scala
        # client a form type), so the raw body is read and never parsed as a form.
        body = read_push_body(
            request,
            current_app.config["MAX_BODY_BYTES"],
            current_app.config["BODY_READ_TIMEOUT_SECONDS"],
        )
        body_key = PushCache.key(group, body)
        # The same bytes pushed again: most likely the same state, which changes nothing and
        # is found out without loading the body again or waiting for the write lock.
        remembered = gateway.push_cache.get(body_key)
        summary = pushed = None
        if remembered is not None:
            pushed = remembered.push
            summary = gateway.store.unchanged_summary(group, pushed, remembered=remembered)
        if summary is None:
            try:
                with one_at_a_time(len(body) > LARGE_BODY_BYTES):
                    pushed = gateway.load_push(parse_push_document(body))
            except ValidationError as error:
                raise InvalidPush(error.messages) from None
            # A push whose counts this worker has seen exceeded already (one that arrived out
            # of order) probably changes nothing too: tried without the lock first, unless
            # that was just found out above.
            likely_unchanged = remembered is None and gateway.push_cache.counts_seen_already(
                group, pushed
            )
            # Flushed below, once, here or by the worker (flush_later.py).
            summary = gateway.store.ingest(
                group, pushed, likely_unchanged=likely_unchanged, flush=False
            )
    except PushRejected as rejection:
        metrics.PUSHES.labels(OUTCOMES[rejection.code]).inc()
        report_rejection(gateway, request, group, rejection)
        raise
    except OperationalError:
        metrics.PUSHES.labels("unavailable").inc()
        raise
    gateway.push_cache.add(body_key, pushed)
    if remembered is None:  # a remembered body's counts were noted when it was accepted
        gateway.push_cache.note_counts(group, pushed)
    # Taken now: accepted() may run once the request is over (flush_later.py).
    remote_addr = request.remote_addr

    def accepted():
        duration = time.perf_counter() - started
        _ACCEPTED.inc()
        metrics.PUSH_DURATION.observe(duration)
        # Most pushes add nothing to these (a state pushed again): each increment of a
        # worker's shared metrics costs about 1 µs.
        for counter, amount in (
            (metrics.OCCURRENCES_STORED, summary.new_occurrences),
            (metrics.COUNT_INCREASE, summary.count_increase),
            (metrics.DROPPED_KEYS, summary.dropped_keys),
            (metrics.STALE_KEYS, summary.stale_keys),
        ):
            if amount:
                counter.inc(amount)
        level = logging.INFO if _changed_something(summary) else logging.DEBUG
        if log.isEnabledFor(level):  # most pushes change nothing, and are not logged at INFO
            fields = _log_fields(remote_addr, group, pushed, summary, duration)
            log.log(level, "%s", push_line(fields), extra=fields)

    gateway.maintenance.note_dropped_keys(group, summary.dropped_keys)
    gateway.maintenance.after_push()
    # orjson writes the summary (a dataclass) in a fifth of jsonify's time (3 against 14 µs).
    response = current_app.response_class(orjson.dumps(summary), mimetype="application/json")
    # A commit of this worker not known to be on disk (this push's, or one whose flush
    # failed and that this push found stored) is flushed before the push is acknowledged:
    # by the gateway's sync worker after this returns (flush_later.py), or here.
    flush_later = request.environ.get(FLUSH_LATER)
    if flush_later is not None and gateway.store.unflushed():
        flush_later(
            PendingFlush(
                gateway.store.flush,
                accepted,
                partial(_unavailable, current_app._get_current_object()),
            )
        )
        return response
    try:
        gateway.store.flush()
    except OperationalError:
        metrics.PUSHES.labels("unavailable").inc()
        raise
    accepted()
    return response


def _log_fields(remote_addr, group, pushed, summary, duration):
    return {
        "outcome": "accepted",
        "from": remote_addr,
        "group": group or "-",
        "client": pushed["target_uuid"] or "-",
        "aggregates": summary.aggregates,
        "occurrences": sum(len(aggregate["occurrences"]) for aggregate in pushed["aggregates"]),
        "new_occurrences": summary.new_occurrences,
        "count_increase": summary.count_increase,
        "dropped_keys": summary.dropped_keys,
        "stale_keys": summary.stale_keys,
        "duration_ms": round(duration * 1000, 1),
    }


def _changed_something(summary):
    """Whether a push added to a count or an occurrence, or had keys dropped or found stale.
    One that did none of these (the same state pushed again: most of a gateway's pushes) is
    logged at DEBUG: at INFO such lines made most of the log and said nothing happened, and
    writing one took 8% of a small repeated push's CPU under gunicorn (0.47 to 0.50 ms per
    push against 0.51 to 0.53, wrk -t2 -c16 -d5s, four rounds alternating, the last of which
    a burst of other work disturbed: 0.66 against 0.58). Its access log line and pushes_total
    still count it."""
    return bool(
        summary.count_increase
        or summary.new_occurrences
        or summary.dropped_keys
        or summary.stale_keys
    )


def _unavailable(app, error):
    """The answer to a push whose flush failed after the view returned (flush_later.py)."""
    metrics.PUSHES.labels("unavailable").inc()
    if not isinstance(error, OperationalError):
        error = OperationalError("flush the WAL file", None, error)
    with app.app_context():
        return database_unavailable(error)
