"""One JSON shape for every failure: {"code", "message", "errors" or "description"}."""

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database is busy or unavailable.
RETRY_AFTER_SECONDS = 1


class PushRejected(Exception):
    """A push the gateway refuses; nothing of it is stored. Each kind has its status (code),
    its pushes_total outcome, and the class of the gateway's report of it (the kind's own
    class name, see REJECTIONS)."""

    code = 400
    message = "invalid push"
    outcome = "invalid"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "description": self.description}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidPush(PushRejected):
    """A body that is not a valid push; `errors` maps field paths to messages."""

    def __init__(self, errors: Any) -> None:
        self.errors = field_paths(errors)
        path, messages = next(iter(self.errors.items()))
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(f"{path}: {' '.join(map(str, messages))}{more}")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}


class InvalidResolve(InvalidPush):
    """A request to resolve an error named in its body, without a valid name."""

    message = "invalid resolve request"


class PushTooLarge(PushRejected):
    code = 413
    message = "push too large"
    outcome = "too_large"


class PushBodyTimedOut(PushRejected):
    code = 408
    message = "push body timed out"
    outcome = "timed_out"


class MalformedPushBody(PushRejected):
    """A body whose framing is broken: a bad chunk size or terminator, or one that ended
    (its client closed its side) before its last chunk or its declared Content-Length."""

    message = "malformed push body"
    outcome = "malformed"


class TooManyGroups(PushRejected):
    """A push that would create a group past MAX_GROUPS."""

    code = 403
    message = "too many groups"
    outcome = "too_many_groups"


class DatabaseFull(PushRejected):
    """A push that would take the database past MAX_DATABASE_BYTES when nothing is left to
    evict in time (storage/budget.py): what it would add is keys and counters, or it came
    faster than housekeeping evicts occurrences."""

    code = 507
    message = "database full"
    outcome = "database_full"

    def headers(self) -> dict[str, str]:
        # Housekeeping evicts within a second or two when occurrences can go; when they
        # cannot, an operator has to act, and a client retrying sooner only adds load.
        return {"Retry-After": str(DATABASE_FULL_RETRY_AFTER_SECONDS)}


DATABASE_FULL_RETRY_AFTER_SECONDS = 60


class UnsupportedPushEncoding(PushRejected):
    code = 415
    message = "unsupported content encoding"
    outcome = "unsupported_encoding"


# The kinds of rejected push, each reported under its own class name.
REJECTIONS = (
    InvalidPush,
    MalformedPushBody,
    TooManyGroups,
    DatabaseFull,
    PushBodyTimedOut,
    PushTooLarge,
    UnsupportedPushEncoding,
)
# The report class of any other rejection.
OTHER_REJECTION_CLASS = "RejectedPush"


def rejection_class(rejection: BaseException) -> str:
    """The class under which the gateway reports a rejected push."""
    kind = type(rejection)
    return kind.__name__ if kind in REJECTIONS else OTHER_REJECTION_CLASS


def field_paths(messages: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten marshmallow's nested error messages into {"a.0.b": [...]} ."""
    if isinstance(messages, dict):
        flat: dict[str, Any] = {}
        for name, inner in messages.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            flat.update(field_paths(inner, path))
        return flat
    return {prefix or "_body": messages if isinstance(messages, list) else [messages]}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PushRejected)
    def rejected_push(error: PushRejected) -> tuple[Response, int]:
        response = jsonify(error.body())
        response.headers.update(error.headers())
        return response, error.code

    # Flask's types take no None status, which Flask itself handles (the status stays as set).
    @app.errorhandler(HTTPException)  # type: ignore[type-var]
    def http_error(error: HTTPException) -> tuple[Response, int | None]:
        response = jsonify(code=error.code, message=error.name, description=error.description)
        # WWW-Authenticate (401), Allow (405) and the like stay.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers.add(name, value)
        return response, error.code

    app.register_error_handler(OperationalError, database_unavailable)


def database_unavailable(error: OperationalError) -> Response:
    """The answer to an OperationalError, in an app context."""
    # Locked past the busy timeout, disk full, read-only file, server gone: the transaction
    # was rolled back (or, its flush failed, never acknowledged), so the client may safely
    # send the same push again.
    log.error("database unavailable: %s", error.orig)
    response = jsonify(
        code=503,
        message="Service Unavailable",
        description="The database is unavailable; nothing was stored. Retry later.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.status_code = 503
    return response
