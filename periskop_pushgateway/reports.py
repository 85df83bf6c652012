"""How the gateway's reports about itself are filed (services/self_report.py writes them,
the pages read them): their group, their aggregation keys, a rejected push's message."""

import re

from .errors import OTHER_REJECTION_CLASS, REJECTIONS
from .groups import DEFAULT_GROUP, describe_group

# The gateway's reports go to the default group.
REPORT_GROUP = DEFAULT_GROUP
_REPORTER = "periskop-pushgateway"


def report_key(class_name: str) -> str:
    """The aggregation key of the gateway's reports of one class."""
    return f"{class_name}@{_REPORTER}"


# The keys under which rejected pushes are reported, for the pages to count them.
REJECTION_KEYS = tuple(
    report_key(name) for name in (*(kind.__name__ for kind in REJECTIONS), OTHER_REJECTION_CLASS)
)


def rejection_message(group: str, code: int, description: str) -> str:
    return f"push to {describe_group(group)} rejected with {code}: {description}"


# Group names hold only A-Z a-z 0-9 . _ - (web.views.GroupNameConverter), so repr() quotes them
# with ' and escapes nothing.
_REJECTED_GROUP = re.compile(r"push to (?:group '([A-Za-z0-9._-]+)'|the default group) rejected ")


def rejected_group(message: str | None) -> str | None:
    """The group a rejection report's message names ("" for the default group), or None for
    a message not written by rejection_message."""
    match = _REJECTED_GROUP.match(message or "")
    if match is None:
        return None
    return match.group(1) or ""
