"""Settings, each read from a PERISKOP_PUSHGATEWAY_<NAME> environment variable."""

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from .wire.fitting import MIN_OCCURRENCE_BYTES

ENV_PREFIX = "PERISKOP_PUSHGATEWAY_"


def _text(value: str) -> str:
    return value


class WholeNumber:
    """The parser of a whole number from low to high: every number setting has a range, so
    that a value too large to mean anything (a 20-digit MAX_BODY_BYTES) is refused at start
    rather than failing pushes later (docs/configuration.md, "Ranges", says why each)."""

    def __init__(self, low: int, high: int, why_low: str = "") -> None:
        self.low, self.high, self._why_low = low, high, why_low

    def __call__(self, value: str) -> int:
        number = int(value)
        if not self.low <= number <= self.high:
            raise ValueError(f"expected {self.words()}, got {value!r}")
        return number

    def words(self) -> str:
        if self._why_low:
            return f"at least {self.low} ({self._why_low}) and at most {self.high}"
        if self.low == 1:
            return f"a positive whole number up to {self.high}"
        return f"a whole number from {self.low} to {self.high}"


_MiB = 1024 * 1024
_GiB = 1024 * _MiB


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
    return level


def sqlite_synchronous(value: str) -> str:
    mode = value.strip().upper()
    if mode not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"expected OFF, NORMAL, FULL or EXTRA, got {value!r}")
    return mode


def _log_format(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("text", "json"):
        raise ValueError(f"expected text or json, got {value!r}")
    return lowered


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


# name: (default, parser, description) — docs/configuration.md's table mirrors this.
SETTINGS: dict[str, tuple[Any, Callable[[str], Any], str]] = {
    "DATABASE_URL": (
        "sqlite:///periskop-pushgateway.db",
        _text,
        "SQLAlchemy URL of the database; the default is a SQLite file in the working directory.",
    ),
    "OCCURRENCES_PER_KEY": (
        10,
        WholeNumber(1, 1000),
        "How many of the newest occurrences are kept per aggregation key.",
    ),
    "MAX_GROUPS": (
        1000,
        WholeNumber(1, 1_000_000),
        "Groups the gateway holds besides the default one; a push that would create one more "
        "gets 403 (and is reported). Groups that export nothing are deleted after the "
        "retention period.",
    ),
    "MAX_KEYS_PER_GROUP": (
        5000,
        WholeNumber(1, 100_000),
        "Exported aggregation keys a group may hold; new keys past it are dropped (and counted).",
    ),
    "RETENTION_SECONDS": (
        7 * 86400,
        WholeNumber(0, 3650 * 86400),
        "Aggregates unchanged for this long leave the export (their counts are remembered); "
        "0 keeps them forever.",
    ),
    "MAX_COUNTERS_PER_GROUP": (
        100_000,
        WholeNumber(1, 10_000_000),
        "Per-process counters (pushing target_uuid x key) a group keeps; beyond it the least "
        "recently pushed are forgotten, and such a process's next push counts whole again.",
    ),
    "MAX_OCCURRENCE_BYTES_PER_GROUP": (
        32 * 1024 * 1024,
        WholeNumber(1, 4 * _GiB),
        "Bytes of occurrences a group stores, exported or hidden; beyond it the oldest stored "
        "are deleted (their counts stay), down to 7/8 of it.",
    ),
    "MAX_DATABASE_BYTES": (
        _GiB,
        WholeNumber(16 * _MiB, 1024 * 1024 * _GiB),
        "Bytes the SQLite database and its write-ahead log take together; past 7/8 of it "
        "(less the WAL's limit) the oldest occurrences of the groups holding the most are "
        "evicted (their counts stay), and a push that would pass it gets 507.",
    ),
    "EXPORT_CACHE_BYTES": (
        64 * 1024 * 1024,
        WholeNumber(1, 1024 * _GiB),
        "Bytes of rendered exports kept as files for scrapes of unchanged groups; the "
        "least recently scraped are removed beyond it.",
    ),
    "EXPORT_CACHE_DIR": (
        "",
        _text,
        "Directory of the rendered exports the workers share, emptied at start; empty: a new "
        "temporary directory, removed at exit.",
    ),
    "PRUNE_INTERVAL_SECONDS": (
        60,
        WholeNumber(1, 86400),
        "How often the gateway prunes (retention, counters, key cap), in a thread of its "
        "own: one worker at a time, no request waiting for it.",
    ),
    "MAX_BODY_BYTES": (
        10 * 1024 * 1024,
        WholeNumber(1, 256 * _MiB),
        "Largest push body accepted, in bytes, after gzip decompression too (413 beyond).",
    ),
    "BODY_READ_TIMEOUT_SECONDS": (
        5,
        WholeNumber(1, 3600),
        "A push whose body stops arriving for this long is answered 408 (gunicorn reached "
        "directly; nginx buffers whole bodies first).",
    ),
    "MAX_AGGREGATES": (1000, WholeNumber(1, 100_000), "Aggregates one push may hold (400 beyond)."),
    "MAX_OCCURRENCES": (
        100,
        WholeNumber(1, 10_000),
        "Occurrences one aggregate may hold (400 beyond).",
    ),
    "MAX_KEY_LENGTH": (
        1024,
        WholeNumber(1, 65536),
        "Characters of an aggregation_key (400 beyond).",
    ),
    "MAX_TEXT_LENGTH": (
        65536,
        WholeNumber(1, 16 * _MiB),
        "Characters of a message, stack trace line, URL, header or request body; longer ones "
        "are cut, with a marker saying how much.",
    ),
    "MAX_OCCURRENCE_BYTES": (
        65536,
        WholeNumber(
            MIN_OCCURRENCE_BYTES, 16 * _MiB, "room for an occurrence's fixed fields and markers"
        ),
        "Bytes of one stored occurrence's JSON; a larger one loses its request body, headers, "
        "causes and the middle of its stack trace, then has its longest texts cut, each with "
        "a marker.",
    ),
    "MAX_STACKTRACE_LINES": (
        1000,
        WholeNumber(1, 1_000_000),
        "Lines of a stack trace; a longer one loses its middle, with a marker line.",
    ),
    "MAX_CAUSE_DEPTH": (
        32,
        WholeNumber(1, 100),
        "Causes kept in a cause chain; deeper ones are replaced by one marker cause.",
    ),
    "AUTO_MIGRATE": (True, _boolean, "Bring the database schema up to date when the app starts."),
    "SQLITE_BUSY_TIMEOUT_MS": (
        10_000,
        WholeNumber(1, 3_600_000),
        "How long a SQLite write waits for another worker's transaction before giving up.",
    ),
    "SQLITE_SYNCHRONOUS": (
        "FULL",
        sqlite_synchronous,
        "FULL: every acknowledged push survives power loss (the WAL file is flushed before "
        "the answer, after the write lock is released); NORMAL, OFF, EXTRA: SQLite's pragma.",
    ),
    "PUSH_USERNAME": ("", _text, "Basic auth user name for pushing; empty: no credentials asked."),
    "PUSH_PASSWORD_HASH": (
        "",
        _text,
        "Password hash (`periskop-pushgateway hash-password`) for pushing.",
    ),
    "ADMIN_USERNAME": (
        "",
        _text,
        "Basic auth user name for the admin API; empty: no credentials asked.",
    ),
    "ADMIN_PASSWORD_HASH": (
        "",
        _text,
        "Password hash (`periskop-pushgateway hash-password`) for the admin API.",
    ),
    "ADMIN_OPEN": (
        False,
        _boolean,
        "Open the admin API (resolve, wipe, status) without credentials, for a gateway only "
        "trusted hosts reach; without it and without admin credentials, it answers 403.",
    ),
    "SECRET_KEY": (
        "",
        _text,
        "Key signing the tokens of the pages' admin forms (against cross-site request "
        "forgery); empty: a random one drawn once and kept in the database, shared by every "
        "worker and instance.",
    ),
    "SCRAPE_USERNAME": (
        "",
        _text,
        "Basic auth user name for the export, health and metrics; empty: no credentials asked.",
    ),
    "SCRAPE_PASSWORD_HASH": (
        "",
        _text,
        "Password hash (`periskop-pushgateway hash-password`) for the export, health and metrics.",
    ),
    "AUTH_FAILURES_PER_MINUTE": (
        10,
        WholeNumber(1, 100_000),
        "Failed credential checks one user name from one client address may cost the gateway "
        "per minute; beyond it that user name from that address gets 429 for anything but "
        "credentials accepted before.",
    ),
    "AUTH_CHECKS_PER_SECOND": (
        1,
        WholeNumber(1, 10_000),
        "Password hash checks the whole gateway makes per second at most (5 seconds' worth "
        "at once after a quiet spell); beyond it, credentials not accepted before get 429.",
    ),
    "SCRUB_HEADERS": (
        "",
        _text,
        "More request header names (comma-separated) whose pushed values are replaced by "
        "[Filtered], beside Authorization, Cookie, Set-Cookie, Proxy-Authorization, X-Api-Key.",
    ),
    "SCRUB_FIELDS": (
        "",
        _text,
        "More field names (comma-separated) whose values in a pushed request URL's query "
        "string and in a JSON or form-encoded request body are replaced by [Filtered]; a field "
        "is filtered when its name contains one, case-insensitively.",
    ),
    "SCRUB_DEFAULT_FIELDS": (
        True,
        _boolean,
        "Filter the fields Sentry filters by default (names containing password, secret, "
        "token, auth, session, api_key, ...) in pushed request URLs and bodies.",
    ),
    "SCRUB_CARD_NUMBERS": (
        True,
        _boolean,
        "Replace numbers that look like payment cards (13 to 19 digits passing the Luhn check) "
        "in pushed messages, request URLs and bodies by [Filtered].",
    ),
    "DROP_REQUEST_BODY": (False, _boolean, "Store no pushed request bodies at all."),
    "SQLITE_WAL_LIMIT_BYTES": (
        64 * 1024 * 1024,
        WholeNumber(1, 1024 * _GiB),
        "Size the SQLite write-ahead log is truncated back to after each checkpoint.",
    ),
    "SQLITE_DISK_RESERVE_BYTES": (
        64 * 1024 * 1024,
        WholeNumber(0, 1024 * _GiB),
        "Disk kept beside a SQLite database (<database>.reserve) for admin deletes and "
        "pruning on a full disk; 0: none.",
    ),
    "PROXY_HOPS": (
        0,
        WholeNumber(0, 10),
        "How many reverse proxies (nginx) stand in front; their X-Forwarded-* headers are trusted.",
    ),
    "LOG_LEVEL": ("INFO", _log_level, "Level of the gateway's own log lines."),
    "LOG_FORMAT": (
        "text",
        _log_format,
        "text, or json: one JSON object per line, for the gateway's own lines and for "
        "gunicorn's access and error logs.",
    ),
}


# Shown as set or unset only (the `config` command).
SECRET_SETTINGS = frozenset(
    name for name in SETTINGS if name.endswith("_PASSWORD_HASH") or name == "SECRET_KEY"
)

# Settings that are no longer read, with what replaced them: the gateway says so at start.
RETIRED = {
    "CLIENT_COUNTER_TTL_SECONDS": "counters now live as long as their aggregate, "
    "bounded by PERISKOP_PUSHGATEWAY_MAX_COUNTERS_PER_GROUP",
}


def retired_settings(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(variable, why) for each retired setting the environment still sets."""
    environ = os.environ if environ is None else environ
    return [
        (ENV_PREFIX + name, why) for name, why in RETIRED.items() if ENV_PREFIX + name in environ
    ]


def setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting, parsed from the environment (or its default)."""
    environ = os.environ if environ is None else environ
    return load_config({ENV_PREFIX + name: environ.get(ENV_PREFIX + name, "")})[name]


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the settings mapping from the environment, then apply explicit overrides (tests)."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, parse, _description) in SETTINGS.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is None or raw == "":
            config[name] = default
            continue
        try:
            config[name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}{name}: {exc}") from None
    config.update(overrides or {})
    return config
