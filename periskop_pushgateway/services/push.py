"""Accepting a push: its whole sequence, from the body read to the summary answered."""

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from .. import metrics
from ..errors import InvalidPush, PushRejected, database_unavailable
from ..log_format import push_line
from ..server.flush_later import FLUSH_LATER, PendingFlush
from ..server.large_work import LARGE_BODY_BYTES, one_at_a_time
from ..wire.body import parse_push_document, read_push_body
from .push_cache import PushCache
from .self_report import report_rejection

if TYPE_CHECKING:
    from flask import Flask, Request, Response

    from ..app import Gateway
    from ..storage.planning import PushSummary

log = logging.getLogger(__name__)

# The child counted for every push accepted, looked up once.
_ACCEPTED = metrics.PUSHES.labels("accepted")


def accept_push(gateway: "Gateway", request: "Request", group: str, app: "Flask") -> "PushSummary":
    """Accept the push a request carries for a group; returns its summary (PushSummary).

    The sequence: the body is read; a body this worker accepted before is looked up in its
    push cache and answered from a read that takes no write lock when it changes nothing;
    any other is loaded (validated, normalized, scrubbed) and ingested, tried without the
    write lock first when its counts are no higher than ones this worker accepted from the
    same process. The push is then remembered, and housekeeping is told what it dropped.

    It is acknowledged (its log line and metrics) only once its commit is on disk: flushed
    here, or, under the gateway's sync worker (server/flush_later.py), by the worker once
    the answer is ready, with one flush for the pushes it took in a row.

    Raises PushRejected (reported, nothing stored) or OperationalError (nothing
    acknowledged)."""
    started = time.perf_counter()
    config = app.config
    cache = gateway.push_cache
    try:
        # Clients send JSON under any content type (the Python client sends none, the Scala
        # client a form type), so the raw body is read and never parsed as a form.
        body = read_push_body(
            request, config["MAX_BODY_BYTES"], config["BODY_READ_TIMEOUT_SECONDS"]
        )
        body_key = PushCache.key(group, body)
        # The same bytes pushed again: most likely the same state, found out without loading
        # the body again or waiting for the write lock.
        remembered = cache.get(body_key)
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
            # A push arriving after a later state of its process probably changes nothing
            # too, unless that was just found out above.
            likely_unchanged = remembered is None and cache.counts_seen_already(group, pushed)
            summary = gateway.store.ingest(
                group, pushed, likely_unchanged=likely_unchanged, flush=False
            )
    except PushRejected as rejection:
        metrics.PUSHES.labels(rejection.outcome).inc()
        report_rejection(gateway, request, group, rejection)
        raise
    except OperationalError:
        metrics.PUSHES.labels("unavailable").inc()
        raise
    # pushed is set once summary is: a remembered push, or one loaded.
    cache.add(body_key, pushed)  # type: ignore[arg-type]
    if remembered is None:  # a remembered body's counts were noted when it was accepted
        cache.note_counts(group, pushed)  # type: ignore[arg-type]
    gateway.housekeeping.note_push(group, summary.dropped_keys)
    acknowledge = partial(_acknowledge, request.remote_addr, group, pushed, summary, started)  # type: ignore[arg-type]
    # A commit of this worker not known to be on disk (this push's, or one whose flush
    # failed and that this push found stored) is flushed before the push is acknowledged.
    flush_later = request.environ.get(FLUSH_LATER)
    if flush_later is not None and gateway.store.unflushed():
        flush_later(PendingFlush(gateway.store.flush, acknowledge, partial(_unavailable, app)))
        return summary
    try:
        gateway.store.flush()
    except OperationalError:
        metrics.PUSHES.labels("unavailable").inc()
        raise
    acknowledge()
    return summary


def _acknowledge(
    remote_addr: str | None,
    group: str,
    pushed: dict[str, Any],
    summary: "PushSummary",
    started: float,
) -> None:
    """The accepted push's metrics and log line, once it is on disk."""
    duration = time.perf_counter() - started
    _ACCEPTED.inc()
    metrics.PUSH_DURATION.observe(duration)
    # Most pushes add nothing to these (a state pushed again).
    for counter, amount in (
        (metrics.OCCURRENCES_STORED, summary.new_occurrences),
        (metrics.COUNT_INCREASE, summary.count_increase),
        (metrics.DROPPED_KEYS, summary.dropped_keys),
        (metrics.STALE_KEYS, summary.stale_keys),
    ):
        if amount:
            counter.inc(amount)
    # A push that changed nothing (the same state pushed again: most of a gateway's pushes)
    # is logged at DEBUG; its access log line and pushes_total still count it.
    level = logging.INFO if _changed_something(summary) else logging.DEBUG
    if log.isEnabledFor(level):
        fields = {
            "outcome": "accepted",
            "from": remote_addr,
            "group": group or "-",
            "client": pushed["target_uuid"] or "-",
            "aggregates": summary.aggregates,
            "occurrences": sum(len(a["occurrences"]) for a in pushed["aggregates"]),
            "new_occurrences": summary.new_occurrences,
            "count_increase": summary.count_increase,
            "dropped_keys": summary.dropped_keys,
            "stale_keys": summary.stale_keys,
            "duration_ms": round(duration * 1000, 1),
        }
        log.log(level, "%s", push_line(fields), extra=fields)


def _changed_something(summary: "PushSummary") -> bool:
    """Whether a push added to a count or an occurrence, or had keys dropped or found stale."""
    return bool(
        summary.count_increase
        or summary.new_occurrences
        or summary.dropped_keys
        or summary.stale_keys
    )


def _unavailable(app: "Flask", error: Exception) -> "Response":
    """The answer to a push whose flush failed after the view returned (flush_later.py)."""
    metrics.PUSHES.labels("unavailable").inc()
    if not isinstance(error, OperationalError):
        error = OperationalError("flush the WAL file", None, error)
    with app.app_context():
        return database_unavailable(error)
