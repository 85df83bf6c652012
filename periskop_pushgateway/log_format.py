"""Log lines as text (the default) or as one JSON object per line (LOG_FORMAT=json): the
gateway's own lines, with a push line's key=value pairs as fields of their own, and
gunicorn's access and error logs."""

import logging
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# JSON fields of an access log line, from gunicorn's atoms: the same as the text line's
# (gunicorn_settings.ACCESS_LOG_FORMAT).
_ACCESS_FIELDS = {
    "remote": "h",
    "forwarded_for": "{x-forwarded-for}i",
    "request": "r",
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "user_agent": "a",
}
_NUMBERS = frozenset(("status", "bytes", "duration_ms"))


class JsonLogFormatter(JsonFormatter):
    """time (ISO 8601, UTC), level, logger, message, pid, and the record's extra fields."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}{process}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
            timestamp="time",
        )


class JsonAccessFormatter(JsonLogFormatter):
    """gunicorn's access log line, its atoms (the record's arguments) as fields."""

    def add_fields(
        self,
        log_record: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        atoms = record.args if isinstance(record.args, Mapping) else {}
        for field, atom in _ACCESS_FIELDS.items():
            value = atoms.get(atom)
            if isinstance(value, str):
                # gunicorn escapes quotes for its text format; JSON escapes its own.
                value = value.replace('\\"', '"')
            if field in _NUMBERS:
                value = _number(value)
            log_record[field] = None if value in ("-", "") else value


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def formatter(log_format: str) -> logging.Formatter:
    return JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def gunicorn_logconfig(log_format: str) -> dict[str, Any] | None:
    """gunicorn's logconfig_dict for the format: None keeps gunicorn's own text logs."""
    if log_format != "json":
        return None
    module = __name__
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # The gateway's own loggers (and Alembic's) propagate here, to the error log's stream.
        "root": {"level": "INFO", "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json_access",
                "stream": "ext://sys.stdout",
            },
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "formatters": {
            "json": {"()": f"{module}.JsonLogFormatter"},
            "json_access": {"()": f"{module}.JsonAccessFormatter"},
        },
    }


def push_line(fields: Mapping[str, Any]) -> str:
    """A push's log line as text: `push key=value ...`; fields go to the record's extra too,
    so that a JSON line has each as a field of its own."""
    return "push " + " ".join(f"{name}={value}" for name, value in fields.items())
