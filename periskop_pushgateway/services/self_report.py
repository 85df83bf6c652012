"""The gateway's own troubles, reported as occurrences in its default export.

So operators see misbehaving clients in Periskop itself. Each kind of report is one
aggregation key, so a flood of bad pushes grows a count, never the storage.
"""

import logging
import re

from sqlalchemy.exc import SQLAlchemyError

from ..errors import OTHER_REJECTION_CLASS, REJECTIONS, rejection_class
from ..groups import DEFAULT_GROUP, describe_group
from ..log_format import push_line
from ..wire.normalize import normalize_push
from ..wire.scrub.scrubber import is_reported
from ..wire.timestamps import now_ns

log = logging.getLogger(__name__)

# The gateway's reports go to the default group.
REPORT_GROUP = DEFAULT_GROUP
_REPORTER = "periskop-pushgateway"
# The keys under which rejected pushes are reported, for the pages to count them.
REJECTION_KEYS = tuple(
    f"{name}@{_REPORTER}"
    for name in (*(kind.__name__ for kind in REJECTIONS), OTHER_REJECTION_CLASS)
)
_MAX_MESSAGE = 1000


def report(store, class_name, message, count=1, http_context=None):
    """Add `count` to the gateway's own error `class_name`, with this occurrence."""
    push = {
        "target_uuid": None,
        "aggregated_errors": [
            {
                "aggregation_key": f"{class_name}@{_REPORTER}",
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
        store.ingest(REPORT_GROUP, normalize_push(push, now_ns()), capped=False)
    except SQLAlchemyError as error:
        # Whatever the gateway answers its client stands; only the report is lost.
        log.warning("could not record the gateway's own %s report: %s", class_name, error)


def report_rejection(gateway, request, group, rejection):
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
    report(gateway.store, class_name, message, http_context=context)
    try:
        gateway.store.note_rejected_push(group)
    except SQLAlchemyError as error:
        log.warning(
            "could not record when a push to %s was rejected: %s", describe_group(group), error
        )


def rejection_message(group, code, description):
    return f"push to {describe_group(group)} rejected with {code}: {description}"


# Group names hold only A-Z a-z 0-9 . _ - (views.GroupNameConverter), so repr() quotes them
# with ' and escapes nothing.
_REJECTED_GROUP = re.compile(r"push to (?:group '([A-Za-z0-9._-]+)'|the default group) rejected ")


def rejected_group(message):
    """The group a rejection report's message names ("" for the default group), or None for
    a message not written by rejection_message."""
    match = _REJECTED_GROUP.match(message or "")
    if match is None:
        return None
    return match.group(1) or ""
