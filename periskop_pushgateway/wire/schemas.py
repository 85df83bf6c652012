"""The push wire format (docs/protocol.md): what is accepted, what is rejected, what is cut short.

Loading a push validates it against the limits in force and hands it to normalize.py, which
turns it into exactly what the export will show.

What is lenient, deliberately: unknown fields are ignored; null means absent wherever the
protocol allows it; a missing or "" severity means error; an error without "class" (Scala
message-only reports); a string cause (old Ruby clients); Go's nil uuid and zero time; header
values that are not strings; over-long text, stack traces and cause chains, which are cut with a
visible marker rather than losing the report. Everything else that does not fit is rejected.
"""

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any, Self

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .fastload import compile_loader
from .fitting import CUT_BY, cut_text, lines_cut, message_cause
from .normalize import OCCURRENCE_NAMESPACE, normalize_push
from .timestamps import GO_ZERO_TIME_NS, now_ns, parse_rfc3339_ns

if TYPE_CHECKING:
    from .occurrence_cache import OccurrenceCache
    from .scrub.scrubber import Scrubber

SEVERITIES = ("info", "warning", "error")

# BIGINT nanoseconds cover 1677-09-21 to 2262-04-11.
_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1
# Larger counts could not be summed exactly by every JSON decoder that reads the export.
MAX_COUNT = 2**53

NIL_UUID = "00000000-0000-0000-0000-000000000000"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

# Null and absent are the same for every optional field.
OPTIONAL: dict[str, Any] = {"allow_none": True, "load_default": None}


@dataclass(frozen=True)
class Limits:
    """What one push may hold; each has a PERISKOP_PUSHGATEWAY_MAX_* setting."""

    aggregates: int  # per push; more is rejected
    occurrences: int  # per aggregate; more is rejected
    key_length: int  # aggregation_key characters; longer is rejected
    text_length: int  # message, body, url, header, stack trace line; longer is cut
    stacktrace_lines: int  # longer traces lose their middle
    cause_depth: int  # deeper chains are cut
    occurrence_bytes: int  # bytes of one occurrence's JSON; a larger one is cut (fitting.py)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(**{f.name: config[f"MAX_{f.name.upper()}"] for f in dataclass_fields(cls)})


class Text(fields.Field):
    """A string, cut to the text limit."""

    default_error_messages = {"invalid": "Not a valid string."}

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not str:
            raise self.make_error("invalid")
        return value if len(value) <= self.limit else cut_text(value, self.limit)


class Identifier(fields.Field):
    """A string that names something (aggregation key, client): never cut, so it is rejected
    when too long, and free of NUL characters, which some databases cannot store."""

    default_error_messages = {
        "invalid": "Not a valid string.",
        "empty": "Must not be empty.",
        "long": "Longer than {limit} characters.",
        "nul": "Must not contain NUL characters.",
    }

    def __init__(self, limit: int, allow_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit
        self.allow_empty = allow_empty

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not str:
            raise self.make_error("invalid")
        if not value and not self.allow_empty:
            raise self.make_error("empty")
        if len(value) > self.limit:
            raise self.make_error("long", limit=self.limit)
        if "\x00" in value:
            raise self.make_error("nul")
        return value


class Timestamp(fields.Field):
    """RFC 3339 with Z or an offset and 0-9 fractional digits, loaded as nanoseconds.

    Go's zero time means "absent" and loads as None.
    """

    default_error_messages = {
        "invalid": "Not a valid RFC 3339 datetime.",
        "range": "Datetime out of range (years 1678 to 2261).",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not str:
            raise self.make_error("invalid")
        ns = parse_rfc3339_ns(value)
        if ns is None:
            raise self.make_error("invalid")
        if ns == GO_ZERO_TIME_NS:
            return None
        if not _MIN_NS <= ns <= _MAX_NS:
            raise self.make_error("range")
        return ns


class Count(fields.Field):
    """A non-negative JSON integer (not a float, string or boolean) up to 2**53."""

    default_error_messages = {
        "invalid": "Not a valid integer.",
        "range": f"Must be between 0 and {MAX_COUNT}.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not int:
            raise self.make_error("invalid")
        if not 0 <= value <= MAX_COUNT:
            raise self.make_error("range")
        return value


class Severity(fields.Field):
    """info, warning or error; "" (Go's zero value) means error, as do null and absent."""

    default_error_messages = {"invalid": f"Must be one of: {', '.join(SEVERITIES)}."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if value == "":
            return None
        if type(value) is not str or value not in SEVERITIES:
            raise self.make_error("invalid")
        return value


class StackTrace(fields.Field):
    """A list of strings checked in one pass: stack traces run to hundreds of lines.

    A trace over the line limit loses its middle: Java puts the throwing frame first, Python
    last, so both ends are kept.
    """

    default_error_messages = {"invalid": "Not a valid list.", "item": "Not a valid string."}

    def __init__(self, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_lines = limits.stacktrace_lines
        self.max_length = limits.text_length

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not list:
            raise self.make_error("invalid")
        if not value:
            return value
        # Checked by C loops (map): a trace is hundreds of lines, pushed many times over.
        if set(map(type, value)) != {str}:
            index = next(i for i, line in enumerate(value) if type(line) is not str)
            raise ValidationError({index: [self.error_messages["item"]]})
        if max(map(len, value)) > self.max_length:
            value = [cut_text(line, self.max_length) for line in value]
        if len(value) > self.max_lines:
            head = self.max_lines // 2
            tail = self.max_lines - head - 1
            value = [
                *value[:head],
                lines_cut(len(value) - head - tail),
                *value[len(value) - tail :],
            ]
        return value


class HeaderMap(fields.Field):
    """Request headers, exported as strings only.

    The Periskop server decodes headers as map[string]string and drops a whole scrape it
    cannot decode, so odd values from lenient clients are turned into strings here.
    """

    default_error_messages = {"invalid": "Not a valid mapping."}

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not dict:
            raise self.make_error("invalid")
        limit = self.limit
        return {
            cut_text(name, limit): cut_text(_header_text(item), limit)
            for name, item in value.items()
        }


def _header_text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if type(value) is list:
        return ", ".join(item if type(item) is str else _json_text(item) for item in value)
    return _json_text(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, which only the standard library writes
        return json.dumps(value, separators=(",", ":"))


class OccurrenceUUID(fields.Field):
    """A UUID in canonical form. The nil UUID means "absent"; another non-UUID string is
    mapped to a UUID derived from it, so it still de-duplicates and the export decodes."""

    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if type(value) is not str:
            raise self.make_error("invalid")
        if _CANONICAL_UUID.match(value):
            return None if value == NIL_UUID else value
        if value == "":
            return None
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            return str(uuid.uuid5(OCCURRENCE_NAMESPACE, value))
        return None if canonical == NIL_UUID else canonical


class CauseChain(fields.Field):
    """A cause, its cause, and so on, walked iteratively so a deep chain costs no recursion.

    A string cause (Ruby clients before 2022 serialized the exception itself) becomes a cause
    with that string as its message. Causes past the depth limit are replaced by one marker.
    """

    default_error_messages = {"invalid": "Not a valid cause: an object, a string or null."}

    def __init__(self, error_fields_schema: Schema, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.load_error_fields = compile_loader(error_fields_schema)
        self.max_depth = limits.cause_depth
        self.text_limit = limits.text_length

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        head: dict[str, Any] = {}
        parent = head
        path: list[str] = []
        while value is not None:
            if len(path) == self.max_depth:
                loaded, value = (
                    message_cause(f"[{_chain_length(value)} more causes cut by {CUT_BY}]"),
                    None,
                )
            elif type(value) is str:
                loaded, value = message_cause(cut_text(value, self.text_limit)), None
            elif type(value) is dict:
                try:
                    loaded = self.load_error_fields(value)
                except ValidationError as error:
                    raise ValidationError(_nest(path, error.messages)) from None
                value = value.get("cause")
            else:
                raise ValidationError(_nest(path, [self.error_messages["invalid"]]))
            loaded["cause"] = None
            parent["cause"] = loaded
            parent = loaded
            path.append("cause")
        return head.get("cause")


def _chain_length(value: Any) -> int:
    length = 0
    while value is not None:
        length += 1
        value = value.get("cause") if type(value) is dict else None
    return length


def _nest(path: list[str], messages: Any) -> Any:
    for name in reversed(path):
        messages = {name: messages}
    return messages


class _Lenient(Schema):
    class Meta:
        # Newer clients may add fields; they are ignored, not rejected.
        unknown = EXCLUDE


def build_push_schema(
    limits: Limits, recent_occurrences: "OccurrenceCache | None" = None
) -> Schema:
    """The push schema under the given limits; built once per app. Its compiled loader loads
    occurrences through recent_occurrences (occurrence_cache.py), when given."""
    text = limits.text_length

    class ErrorFieldsSchema(_Lenient):
        """One exception, without its cause (see CauseChain)."""

        # Absent in the Scala client's message-only reports.
        class_ = Text(text, data_key="class", attribute="class", **OPTIONAL)
        message = Text(text, **OPTIONAL)
        stacktrace = StackTrace(limits, **OPTIONAL)

    class ErrorSchema(ErrorFieldsSchema):
        cause = CauseChain(ErrorFieldsSchema(), limits, **OPTIONAL)

    class HTTPContextSchema(_Lenient):
        request_method = Text(text, **OPTIONAL)
        request_url = Text(text, **OPTIONAL)
        request_headers = HeaderMap(text, **OPTIONAL)
        request_body = Text(text, **OPTIONAL)

    class OccurrenceSchema(_Lenient):
        error = fields.Nested(ErrorSchema, required=True)
        uuid = OccurrenceUUID(**OPTIONAL)
        timestamp = Timestamp(**OPTIONAL)
        severity = Severity(**OPTIONAL)
        http_context = fields.Nested(HTTPContextSchema, **OPTIONAL)

    class AggregateSchema(_Lenient):
        aggregation_key = Identifier(limits.key_length, required=True)
        # Missing means "the number of occurrences in this push".
        total_count = Count(**OPTIONAL)
        severity = Severity(**OPTIONAL)
        created_at = Timestamp(**OPTIONAL)
        latest_errors = fields.List(
            fields.Nested(OccurrenceSchema, metadata={"memo": recent_occurrences}),
            validate=validate.Length(max=limits.occurrences),
            **OPTIONAL,
        )

    class PushSchema(_Lenient):
        # Identifies one pushing process; missing, null or "" make the push anonymous.
        target_uuid = Identifier(255, allow_empty=True, **OPTIONAL)
        aggregated_errors = fields.List(
            fields.Nested(AggregateSchema),
            validate=validate.Length(max=limits.aggregates),
            **OPTIONAL,
        )

    return PushSchema()


def build_push_loader(
    limits: Limits, scrubber: "Scrubber", occurrence_cache: "OccurrenceCache | None" = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """load_push(document): the push validated under the limits, normalized (normalize.py) and
    scrubbed of secrets; raises marshmallow's ValidationError for a push that is not valid.
    Occurrences pushed again are not loaded again when occurrence_cache is given."""
    load = compile_loader(build_push_schema(limits, occurrence_cache))

    def load_push(document: dict[str, Any]) -> dict[str, Any]:
        return normalize_push(
            load(document), now_ns(), scrubber.scrub_occurrence, limits.occurrence_bytes
        )

    return load_push
