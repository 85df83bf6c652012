"""Fitting one occurrence into MAX_OCCURRENCE_BYTES of exported JSON, and the visible markers
every cut leaves (schemas.py cuts single texts, traces and cause chains with the same ones).

Every text of an occurrence is already cut to MAX_TEXT_LENGTH, but an occurrence holds many
texts (a thousand stack trace lines, thirty-two causes, any number of headers), so only a
bound on the whole keeps what a group stores and a scrape renders in proportion. What is
least useful for finding the error goes first, whole fields before the text of one: the
request body, the request headers, the causes, the middle of the stack trace; then the
remaining texts are cut, the longest first. Each cut leaves the usual visible marker.
"""

from typing import Any

import orjson

from .render import occurrence_json

# Who cut: every marker names it, so nobody mistakes a cut for the client's own text.
CUT_BY = "periskop-pushgateway"


def cut_text(text: str, limit: int) -> str:
    """text cut to its first `limit` characters, with a marker saying how many went."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut by {CUT_BY}]"


def lines_cut(count: int) -> str:
    """The line that stands for `count` lines cut from the middle of a stack trace."""
    return f"… [{count} lines cut by {CUT_BY}]"


def message_cause(message: str) -> dict[str, Any]:
    """A cause holding only a message: a marker in place of causes cut, or a cause a client
    sent as a plain string."""
    return {"class": None, "message": message, "stacktrace": None, "cause": None}


# The smallest bound accepted: room for an occurrence's fixed fields (uuid, timestamp,
# severity) and the markers, once every text has been cut.
MIN_OCCURRENCE_BYTES = 4096
_MARKER_ROOM = 64  # bytes of JSON a "… [N more characters cut by …]" marker takes at most


def fitted_occurrence(
    error: dict[str, Any],
    occurrence_uuid: str,
    timestamp_ns: int,
    severity: str,
    http_context: dict[str, Any] | None,
    max_bytes: int,
) -> bytes:
    """The occurrence's exported JSON as bytes, at most max_bytes long."""
    body = occurrence_json(error, occurrence_uuid, timestamp_ns, severity, http_context)
    if len(body) <= max_bytes:
        return body
    error = copy_error(error)
    http_context = dict(http_context) if http_context else http_context
    for cut in _CUTS:
        if cut(error, http_context, len(body) - max_bytes):
            body = occurrence_json(error, occurrence_uuid, timestamp_ns, severity, http_context)
            if len(body) <= max_bytes:
                return body
    raise ValueError(f"an occurrence cannot be cut to {max_bytes} bytes")


def copy_error(error: dict[str, Any]) -> dict[str, Any]:
    """A copy of the error and its causes (and their stack traces) that may be changed
    without changing the error: the cuts here, the scrub of messages (scrubber.py)."""
    head = dict(error)
    node = head
    while True:
        if node.get("stacktrace") is not None:
            node["stacktrace"] = list(node["stacktrace"])
        if node.get("cause") is None:
            return head
        node["cause"] = dict(node["cause"])
        node = node["cause"]


def _cut_request_body(error: dict[str, Any], http_context: Any, excess: int) -> bool:
    body = http_context and http_context.get("request_body")
    if not body:
        return False
    http_context["request_body"] = f"[{len(body)} characters cut by {CUT_BY}]"
    return True


def _cut_request_headers(error: dict[str, Any], http_context: Any, excess: int) -> bool:
    headers = http_context and http_context.get("request_headers")
    if not headers:
        return False
    http_context["request_headers"] = {"…": f"[{len(headers)} headers cut by {CUT_BY}]"}
    return True


def _cut_causes(error: dict[str, Any], http_context: Any, excess: int) -> bool:
    depth = 0
    cause = error.get("cause")
    while cause is not None:
        depth += 1
        cause = cause.get("cause")
    if not depth:
        return False
    error["cause"] = message_cause(f"[{depth} causes cut by {CUT_BY}]")
    return True


def _cut_stacktrace(error: dict[str, Any], http_context: Any, excess: int) -> bool:
    """Drop lines from the middle of the trace until `excess` bytes are gone, or all of them;
    both ends stay, as in schemas.StackTrace."""
    lines = error.get("stacktrace")
    if not lines or len(lines) < 2:
        return False
    # Lines [start, end) go; the window grows from the middle, a line at a time on each side.
    start = end = len(lines) // 2
    freed = 0
    while freed < excess + _MARKER_ROOM and (start > 0 or end < len(lines)):
        if end < len(lines) and (end - len(lines) // 2 <= len(lines) // 2 - start or start == 0):
            freed += len(orjson.dumps(lines[end])) + 1
            end += 1
        else:
            start -= 1
            freed += len(orjson.dumps(lines[start])) + 1
    error["stacktrace"] = [*lines[:start], lines_cut(end - start), *lines[end:]]
    return True


def _cut_longest_text(error: dict[str, Any], http_context: Any, excess: int) -> bool:
    """Cut the longest remaining text (message, class, url, method, a stack trace line) by
    enough characters to free `excess` bytes, or to nothing but its marker."""
    places: list[tuple[Any, Any]] = []
    if http_context:
        places += [(http_context, name) for name in ("request_url", "request_method")]
    node: dict[str, Any] | None = error
    while node is not None:
        places += [(node, "message"), (node, "class")]
        lines = node.get("stacktrace") or ()
        places += [(lines, index) for index in range(len(lines))]
        node = node.get("cause")
    texts = [
        (len(orjson.dumps(owner[name])), owner, name)
        for owner, name in places
        if isinstance(owner, list) or isinstance(owner.get(name), str)
    ]
    texts = [(size, owner, name) for size, owner, name in texts if size > _MARKER_ROOM]
    if not texts:
        return False
    _size, owner, name = max(texts, key=lambda text: text[0])
    owner[name] = _cut_to_bytes(owner[name], excess + _MARKER_ROOM)
    return True


def _cut_to_bytes(text: str, excess: int) -> str:
    """text cut at its end by enough characters for its JSON to be `excess` bytes shorter."""
    encoded = len(orjson.dumps(text))
    low, high = 0, len(text)  # the longest prefix whose JSON fits is found by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if encoded - len(orjson.dumps(text[:middle])) >= excess:
            low = middle
        else:
            high = middle - 1
    return cut_text(text, low)


# Whole fields first, least useful for finding the error first; the text cut is repeated.
_CUTS = (
    _cut_request_body,
    _cut_request_headers,
    _cut_causes,
    _cut_stacktrace,
    *[_cut_longest_text] * 64,
)
