"""One JSON shape for every failure: {"code", "message", "errors" or "description"}."""

import logging

from flask import jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when the database is busy or unavailable.
RETRY_AFTER_SECONDS = 1


class InvalidPush(Exception):
    """A push body the gateway rejects; `errors` maps field paths to messages."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def field_paths(messages, prefix=""):
    """Flatten marshmallow's nested error messages into {"a.0.b": [...]} ."""
    if isinstance(messages, dict):
        flat = {}
        for name, inner in messages.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            flat.update(field_paths(inner, path))
        return flat
    return {prefix or "_body": messages if isinstance(messages, list) else [messages]}


def register_error_handlers(app):
    @app.errorhandler(InvalidPush)
    def invalid_push(error):
        return jsonify(code=400, message="invalid push", errors=field_paths(error.errors)), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        response = jsonify(code=error.code, message=error.name, description=error.description)
        return response, error.code

    @app.errorhandler(OperationalError)
    def database_unavailable(error):
        # Locked past the busy timeout, disk full, read-only file, server gone: the transaction
        # was rolled back, so the client may safely send the same push again.
        log.error("database unavailable: %s", error.orig)
        response = jsonify(
            code=503,
            message="Service Unavailable",
            description="The database is unavailable; nothing was stored. Retry later.",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, 503
