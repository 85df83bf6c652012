"""The push wire format (PROTOCOL.md): validation, and normalization into the exported form.

Loading a push yields exactly what the export will show, so the export never re-validates:
occurrence bodies are stored as the JSON the Periskop server will decode.
"""

import uuid

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from .render import occurrence_json
from .timestamps import GO_ZERO_TIME_NS, now_ns, parse_rfc3339_ns

SEVERITIES = ("info", "warning", "error")
DEFAULT_SEVERITY = "error"

# BIGINT nanoseconds cover 1677-09-21 to 2262-04-11.
_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1
# Larger counts could not be summed exactly by every JSON decoder that reads the export.
MAX_COUNT = 2**53
MAX_CAUSE_DEPTH = 32

NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Namespace for occurrence uuids the gateway derives (missing, nil or non-UUID ones).
OCCURRENCE_NAMESPACE = uuid.UUID("9a4b8d36-5f3e-4b63-9f0e-0d3c5e1c7a21")


class Timestamp(fields.Field):
    """RFC 3339 with Z or an offset and 0-9 fractional digits, loaded as nanoseconds.

    Go's zero time means "absent" and loads as None.
    """

    default_error_messages = {
        "invalid": "Not a valid RFC 3339 datetime.",
        "range": "Datetime out of range (years 1678 to 2261).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
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

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not int:
            raise self.make_error("invalid")
        if not 0 <= value <= MAX_COUNT:
            raise self.make_error("range")
        return value


class Severity(fields.Field):
    """info, warning or error; missing, null or "" (Go's zero value) mean error."""

    default_error_messages = {"invalid": f"Must be one of: {', '.join(SEVERITIES)}."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "":
            return DEFAULT_SEVERITY
        if not isinstance(value, str) or value not in SEVERITIES:
            raise self.make_error("invalid")
        return value


class StringList(fields.Field):
    """A list of strings checked in one pass: stack traces run to hundreds of lines."""

    default_error_messages = {"invalid": "Not a valid list.", "item": "Not a valid string."}

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not list:
            raise self.make_error("invalid")
        for index, item in enumerate(value):
            if type(item) is not str:
                raise ValidationError({index: [self.error_messages["item"]]})
        return value


class HeaderMap(fields.Field):
    """Request headers, exported as strings only.

    The Periskop server decodes headers as map[string]string and drops a whole scrape it
    cannot decode, so odd values from lenient clients are turned into strings here.
    """

    default_error_messages = {"invalid": "Not a valid mapping."}

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not dict:
            raise self.make_error("invalid")
        return {name: _header_text(item) for name, item in value.items()}


def _header_text(value):
    if type(value) is str:
        return value
    if value is None:
        return ""
    if type(value) is list:
        return ", ".join(item if type(item) is str else _json_text(item) for item in value)
    return _json_text(value)


def _json_text(value):
    return orjson.dumps(value).decode()


class OccurrenceUUID(fields.Field):
    """A UUID in canonical form. The nil UUID means "absent"; another non-UUID string is
    mapped to a UUID derived from it, so it still de-duplicates and the export decodes."""

    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if value == "":
            return None
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            return str(uuid.uuid5(OCCURRENCE_NAMESPACE, value))
        return None if canonical == NIL_UUID else canonical


def _optional(field_class, **kwargs):
    return field_class(allow_none=True, load_default=None, **kwargs)


class _Lenient(Schema):
    class Meta:
        # Newer clients may add fields; they are ignored, not rejected.
        unknown = EXCLUDE


class ErrorFieldsSchema(_Lenient):
    """One exception, without its cause (see CauseChain)."""

    # "class" may be absent: the Scala client's message-only reports send only "message".
    class_ = _optional(fields.String, data_key="class", attribute="class")
    message = _optional(fields.String)
    stacktrace = _optional(StringList)


_error_fields_schema = ErrorFieldsSchema()


class CauseChain(fields.Field):
    """A cause, its cause, and so on, walked iteratively so a deep chain costs no recursion.

    A string cause (Ruby clients before 2022 serialized the exception itself) becomes a cause
    with that string as its message.
    """

    default_error_messages = {
        "invalid": "Not a valid cause: an object, a string or null.",
        "depth": f"Cause chain deeper than {MAX_CAUSE_DEPTH}.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        head = {}
        parent = head
        depth = 0
        path = []
        while value is not None:
            depth += 1
            if depth > MAX_CAUSE_DEPTH:
                raise self.make_error("depth")
            if type(value) is str:
                loaded, value = {"class": None, "message": value, "stacktrace": None}, None
            elif type(value) is dict:
                try:
                    loaded = _error_fields_schema.load(value)
                except ValidationError as exc:
                    raise ValidationError(_nest(path, exc.messages)) from None
                value = value.get("cause")
            else:
                raise ValidationError(_nest(path, [self.error_messages["invalid"]]))
            loaded["cause"] = None
            parent["cause"] = loaded
            parent = loaded
            path.append("cause")
        return head.get("cause")


def _nest(path, messages):
    for name in reversed(path):
        messages = {name: messages}
    return messages


class ErrorSchema(ErrorFieldsSchema):
    cause = _optional(CauseChain)


class HTTPContextSchema(_Lenient):
    request_method = _optional(fields.String)
    request_url = _optional(fields.String)
    request_headers = _optional(HeaderMap)
    request_body = _optional(fields.String)


class OccurrenceSchema(_Lenient):
    error = fields.Nested(ErrorSchema, required=True)
    uuid = _optional(OccurrenceUUID)
    timestamp = _optional(Timestamp)
    severity = _optional(Severity)
    http_context = _optional(fields.Nested, nested=HTTPContextSchema)


class AggregateSchema(_Lenient):
    aggregation_key = fields.String(required=True, validate=validate.Length(min=1))
    # Missing means "the number of occurrences in this push".
    total_count = _optional(Count)
    severity = _optional(Severity)
    created_at = _optional(Timestamp)
    latest_errors = _optional(fields.List, cls_or_instance=fields.Nested(OccurrenceSchema))


class PushSchema(_Lenient):
    # Identifies one pushing process; missing, null or "" make the push anonymous.
    target_uuid = _optional(fields.String, validate=validate.Length(max=255))
    aggregated_errors = _optional(fields.List, cls_or_instance=fields.Nested(AggregateSchema))

    @post_load
    def normalize(self, push, **kwargs):
        return normalize_push(push, now_ns())


def normalize_push(push, received_ns):
    """Fill in what the protocol lets a client leave out, in the form the store keeps.

    Returns {"target_uuid", "aggregates": [{"aggregation_key", "total_count", "severity",
    "created_ns", "occurrences": [{"uuid", "timestamp_ns", "body"}]}]}, where body is the
    occurrence's exported JSON.
    """
    target_uuid = push["target_uuid"] or None
    aggregates = []
    for aggregate in push["aggregated_errors"] or ():
        occurrences = _normalize_occurrences(
            aggregate["latest_errors"] or (), target_uuid, aggregate["aggregation_key"], received_ns
        )
        total_count = aggregate["total_count"]
        created_ns = aggregate["created_at"]
        if created_ns is None:
            created_ns = min((o["timestamp_ns"] for o in occurrences), default=received_ns)
        aggregates.append(
            {
                "aggregation_key": aggregate["aggregation_key"],
                "total_count": len(occurrences) if total_count is None else total_count,
                "severity": aggregate["severity"] or DEFAULT_SEVERITY,
                "created_ns": created_ns,
                "occurrences": occurrences,
            }
        )
    return {"target_uuid": target_uuid, "aggregates": aggregates}


def _normalize_occurrences(latest_errors, target_uuid, aggregation_key, received_ns):
    occurrences = []
    seen_content = {}
    for occurrence in latest_errors:
        timestamp_ns = occurrence["timestamp"]
        occurrence_uuid = occurrence["uuid"]
        if occurrence_uuid is None:
            occurrence_uuid = _derived_uuid(occurrence, target_uuid, aggregation_key, seen_content)
        if timestamp_ns is None:
            timestamp_ns = received_ns
        body = occurrence_json(
            occurrence["error"],
            occurrence_uuid,
            timestamp_ns,
            occurrence["severity"] or DEFAULT_SEVERITY,
            occurrence["http_context"],
        )
        occurrences.append({"uuid": occurrence_uuid, "timestamp_ns": timestamp_ns, "body": body})
    return occurrences


def _derived_uuid(occurrence, target_uuid, aggregation_key, seen_content):
    """A uuid for an occurrence pushed without one.

    From an identified process it is derived from what was pushed, so re-pushing the same
    cumulative state stays idempotent; identical occurrences within one push are told apart by
    their rank. An anonymous push gets a fresh uuid: a script reporting the same failure every
    night must show each night's occurrence.
    """
    if target_uuid is None:
        return str(uuid.uuid4())
    content = orjson.dumps(
        [
            target_uuid,
            aggregation_key,
            occurrence["timestamp"],
            occurrence["severity"],
            occurrence["error"],
            occurrence["http_context"],
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    rank = seen_content.get(content, 0)
    seen_content[content] = rank + 1
    return str(uuid.uuid5(OCCURRENCE_NAMESPACE, content.decode() + f"#{rank}"))


push_schema = PushSchema()
