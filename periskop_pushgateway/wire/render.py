"""The export body, in the shape the Periskop server decodes (docs/protocol.md, "Export body").

Occurrences are rendered once, when pushed, and stored as JSON text; a scrape only
joins them into their aggregates.
"""

from collections.abc import Iterable
from typing import Any

import orjson

from .timestamps import format_rfc3339_ns


def occurrence_json(
    error: Any, occurrence_uuid: str, timestamp_ns: int, severity: str, http_context: Any
) -> bytes:
    """One occurrence as exported, as UTF-8 bytes."""
    return orjson.dumps(
        {
            "error": error,
            "uuid": occurrence_uuid,
            "timestamp": format_rfc3339_ns(timestamp_ns),
            "severity": severity,
            "http_context": http_context,
        }
    )


def render_export(
    target_uuid: str | None, aggregates: Iterable[tuple[str, int, str, int, list[str]]]
) -> bytes:
    """aggregates: (aggregation_key, total_count, severity, created_ns, [occurrence JSON, …])
    in export order. Returns the body as bytes."""
    parts = [b'{"aggregated_errors":[']
    for index, (key, total_count, severity, created_ns, bodies) in enumerate(aggregates):
        if index:
            parts.append(b",")
        parts.append(
            b'{"aggregation_key":%b,"total_count":%d,"severity":%b,"created_at":%b,"latest_errors":['
            % (
                orjson.dumps(key),
                total_count,
                orjson.dumps(severity),
                orjson.dumps(format_rfc3339_ns(created_ns)),
            )
        )
        parts.append(",".join(bodies).encode())
        parts.append(b"]}")
    parts.append(b'],"target_uuid":%b}' % orjson.dumps(target_uuid))
    return b"".join(parts)
