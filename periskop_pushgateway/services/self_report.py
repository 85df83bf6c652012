"""The gateway's own troubles, reported as occurrences in its default export.

So operators see misbehaving clients in Periskop itself. Each kind of report is one
aggregation key, so a flood of bad pushes grows a count, never the storage.
"""

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from ..errors import PushRejected, rejection_class
from ..groups import describe_group
from ..log_format import push_line
from ..reports import REPORT_GROUP, rejection_message, report_key
from ..wire.normalize import normalize_push
from ..wire.scrub.scrubber import is_reported
from ..wire.timestamps import now_ns

if TYPE_CHECKING:
    from flask import Request

    from ..app import Gateway
    from ..storage.store import Store

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1000


def report(
    store: "Store",
    class_name: str,
    message: str,
    count: int = 1,
    http_context: dict[str, Any] | None = None,
    flush: bool = True,
) -> None:
    """Add `count` to the gateway's own error `class_name`, with this occurrence. flush=False:
    on disk with this process's next flush (Store.run_write)."""
    push = {
        "target_uuid": None,
        "aggregated_errors": [
            {
                "aggregation_key": report_key(class_name),
                "total_count": count,
                "severity": "warning",
                "created_at": None,
                "latest_errors": [
                    {
                        "error": {
                            "class": class_name,
                            "message": message[:_MAX_MESSAGE],
                            "stacktrace": None,
                            "cause": None,
                        },
                        "uuid": None,
                        "timestamp": None,
                        "severity": "warning",
                        "http_context": http_context,
                    }
                ],
            }
        ],
    }
    try:
        store.ingest(REPORT_GROUP, normalize_push(push, now_ns()), capped=False, flush=flush)
    except SQLAlchemyError as error:
        # Whatever the gateway answers its client stands; only the report is lost.
        log.warning("could not record the gateway's own %s report: %s", class_name, error)


def report_rejection(
    gateway: "Gateway", request: "Request", group: str, rejection: PushRejected
) -> None:
    class_name = rejection_class(rejection)
    fields = {
        "outcome": "rejected",
        "from": request.remote_addr,
        "group": group or "-",
        "status": rejection.code,
        "reason": rejection.description,
    }
    log.warning("%s", push_line(fields), extra=fields)
    context = {
        "request_method": request.method,
        "request_url": request.url,
        "request_headers": {
            name: value for name, value in request.headers.items() if is_reported(name)
        },
        "request_body": None,
    }
    message = rejection_message(group, rejection.code, rejection.description)
    # Neither record is flushed before the answer: they acknowledge nothing, and a flood of
    # rejected pushes would otherwise cost two flushes each. The next flush takes them.
    report(gateway.store, class_name, message, http_context=context, flush=False)
    try:
        gateway.store.note_rejected_push(group, flush=False)
    except SQLAlchemyError as error:
        log.warning(
            "could not record when a push to %s was rejected: %s", describe_group(group), error
        )
