"""The gateway's own rejections, reported as occurrences in its default export.

So operators see misbehaving clients in Periskop itself. Each kind of rejection is one
aggregation key, so a flood of bad pushes grows a count, never the storage.
"""

import logging

from sqlalchemy.exc import SQLAlchemyError

from .normalize import normalize_push
from .timestamps import now_ns

log = logging.getLogger(__name__)

# The own group of the gateway's reports: the default one.
REPORT_GROUP = ""
REJECTION_CLASSES = {400: "InvalidPush", 413: "PushTooLarge", 415: "UnsupportedPushEncoding"}
_MAX_MESSAGE = 1000


def report_rejection(gateway, request, group, rejection):
    class_name = REJECTION_CLASSES.get(rejection.code, "RejectedPush")
    where = f"group {group!r}" if group else "the default group"
    message = f"push to {where} rejected with {rejection.code}: {rejection.description}"
    log.warning(
        "rejected push from=%s group=%s status=%d reason=%s",
        request.remote_addr,
        group or "-",
        rejection.code,
        rejection.description,
    )
    report = {
        "target_uuid": None,
        "aggregated_errors": [
            {
                "aggregation_key": f"{class_name}@periskop-pushgateway",
                "total_count": 1,
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
                        "http_context": {
                            "request_method": request.method,
                            "request_url": request.url,
                            "request_headers": {
                                name: value
                                for name, value in request.headers.items()
                                if not gateway.scrubber.is_sensitive(name)
                            },
                            "request_body": None,
                        },
                    }
                ],
            }
        ],
    }
    try:
        gateway.store.ingest(REPORT_GROUP, normalize_push(report, now_ns()))
    except SQLAlchemyError as error:
        # The client still gets its 4xx; only the report is lost.
        log.warning("could not record the rejected push: %s", error)
