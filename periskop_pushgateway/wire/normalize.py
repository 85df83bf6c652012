"""Filling in what the protocol lets a client leave out, in the form the store keeps."""

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..config import SETTINGS
from .fitting import fitted_occurrence

DEFAULT_SEVERITY = "error"

# Namespace for occurrence uuids the gateway derives (missing, nil or non-UUID ones).
OCCURRENCE_NAMESPACE = uuid.UUID("9a4b8d36-5f3e-4b63-9f0e-0d3c5e1c7a21")


# Bytes of one stored occurrence's JSON, for pushes not loaded under the configured limits
# (the gateway's own reports): the setting's default.
DEFAULT_MAX_OCCURRENCE_BYTES = SETTINGS["MAX_OCCURRENCE_BYTES"][0]


def normalize_push(
    push: dict[str, Any],
    received_ns: int,
    scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    max_occurrence_bytes: int = DEFAULT_MAX_OCCURRENCE_BYTES,
) -> dict[str, Any]:
    """Fill in what the protocol lets a client leave out, in the form the store keeps.

    Returns {"target_uuid", "aggregates": [{"aggregation_key", "total_count", "severity",
    "created_ns", "occurrences": [{"uuid", "timestamp_ns", "pending"}]}]}. render(occurrence)
    turns "pending" into "body", the occurrence's exported JSON cut to at most
    max_occurrence_bytes (fitting.py), and "body_bytes", its size in UTF-8. scrub, when given,
    cleans each occurrence (scrubber.py) before it is rendered.

    Rendering waits until the store knows the occurrence is to be stored: a client pushing its
    cumulative state sends the same occurrences again and again, and most of them are stored
    already. Everything that decides whether a push is valid is done here, before that.
    """
    target_uuid = push["target_uuid"] or None
    aggregates = []
    for aggregate in push["aggregated_errors"] or ():
        occurrences = _normalize_occurrences(
            aggregate["latest_errors"] or (),
            target_uuid,
            aggregate["aggregation_key"],
            received_ns,
            scrub,
            max_occurrence_bytes,
        )
        total_count = aggregate["total_count"]
        created_ns = aggregate["created_at"]
        if created_ns is None:
            created_ns = min((o["timestamp_ns"] for o in occurrences), default=received_ns)
        aggregates.append(
            {
                "aggregation_key": aggregate["aggregation_key"],
                "total_count": len(occurrences) if total_count is None else total_count,
                "severity": aggregate["severity"] or DEFAULT_SEVERITY,
                "created_ns": created_ns,
                "occurrences": occurrences,
            }
        )
    return {"target_uuid": target_uuid, "aggregates": aggregates}


def _normalize_occurrences(
    latest_errors: Iterable[dict[str, Any]],
    target_uuid: str | None,
    aggregation_key: str,
    received_ns: int,
    scrub: Callable[[dict[str, Any]], dict[str, Any]] | None,
    max_bytes: int,
) -> list[dict[str, Any]]:
    occurrences = []
    seen_content: dict[bytes, int] = {}
    for occurrence in latest_errors:
        timestamp_ns = occurrence["timestamp"]
        occurrence_uuid = occurrence["uuid"]
        # Scrubbed when rendered, unless its uuid is derived from its content: from what is
        # stored, so scrubbed first.
        scrub_later = scrub
        if occurrence_uuid is None:
            if scrub is not None:
                occurrence = scrub(occurrence)
            scrub_later = None
            occurrence_uuid = _derived_uuid(occurrence, target_uuid, aggregation_key, seen_content)
        if timestamp_ns is None:
            timestamp_ns = received_ns
        occurrences.append(
            {
                "uuid": occurrence_uuid,
                "timestamp_ns": timestamp_ns,
                "pending": (occurrence, scrub_later, max_bytes),
            }
        )
    return occurrences


def render(occurrence: dict[str, Any]) -> dict[str, Any]:
    """Give a normalized occurrence its "body" and "body_bytes" (see normalize_push), once."""
    pending = occurrence.pop("pending", None)
    if pending is None:
        return occurrence
    loaded, scrub, max_bytes = pending
    if scrub is not None:
        loaded = scrub(loaded)
    body = fitted_occurrence(
        loaded["error"],
        occurrence["uuid"],
        occurrence["timestamp_ns"],
        loaded["severity"] or DEFAULT_SEVERITY,
        loaded["http_context"],
        max_bytes,
    )
    occurrence["body"] = body.decode()
    occurrence["body_bytes"] = len(body)
    return occurrence


def _derived_uuid(
    occurrence: dict[str, Any],
    target_uuid: str | None,
    aggregation_key: str,
    seen_content: dict[bytes, int],
) -> str:
    """A uuid for an occurrence pushed without one.

    From an identified process it is derived from what was pushed, so re-pushing the same
    cumulative state stays idempotent; identical occurrences within one push are told apart by
    their rank. An anonymous push gets a fresh uuid: a script reporting the same failure every
    night must show each night's occurrence.
    """
    if target_uuid is None:
        return str(uuid.uuid4())
    content = orjson.dumps(
        [
            target_uuid,
            aggregation_key,
            occurrence["timestamp"],
            occurrence["severity"],
            occurrence["error"],
            occurrence["http_context"],
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    rank = seen_content.get(content, 0)
    seen_content[content] = rank + 1
    return str(uuid.uuid5(OCCURRENCE_NAMESPACE, content.decode() + f"#{rank}"))
