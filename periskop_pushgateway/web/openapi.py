"""The OpenAPI 3.1 document of GET /openapi.json, built with apispec.

The push body is described from the very schema that validates pushes (schemas.py), built
with the app's limits, so maxLength and maxItems are the limits in force. The paths come from
the app's URL map and each view's operation from _operations() below, so a route cannot move
without its description following; tests/test_openapi.py fails for a view missing there.

The responses are described by the marshmallow schemas below: the export is stricter than the
push it is made of (every field present, severities and timestamps normalized), which is what
the Periskop server relies on.
"""

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import orjson
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema, fields, validate
from werkzeug.routing import Rule

from .. import __version__
from ..storage.planning import PushSummary
from ..wire.schemas import (
    MAX_COUNT,
    SEVERITIES,
    CauseChain,
    Count,
    HeaderMap,
    Identifier,
    Limits,
    OccurrenceUUID,
    Severity,
    StackTrace,
    Text,
    Timestamp,
    build_push_schema,
)
from .auth import ROLE_OF_BLUEPRINT, admin_api_off

OPENAPI_VERSION = "3.1.0"
# Methods werkzeug adds to every rule by itself.
_IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
_EXTENSION = "periskop_pushgateway.web.openapi"
_BASIC_AUTH = "basicAuth"

# Years 1678 to 2261 (the range of 64-bit nanoseconds), 0 to 9 fractional digits, Z or an
# offset; Go's zero time is accepted too and means "absent".
PUSHED_TIMESTAMP = (
    r"^(?:(?:16(?:7[89]|[89]\d)|1[7-9]\d\d|2[01]\d\d|22[0-5]\d|226[01])"
    r"-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)"
    r"|0001-01-01T00:00:00Z)$"
)
# Exported timestamps are in UTC, as Go's time.RFC3339Nano writes them.
EXPORTED_TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z$"
# Counts saturate at the largest BIGINT rather than fail.
MAX_EXPORTED_COUNT = 2**63 - 1


# --- How the push schema's own fields are described ------------------------------------


def _custom_field_properties(
    converter: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """OpenAPI properties of the custom fields of schemas.py (an apispec attribute function,
    called as a method of the plugin's converter)."""
    if isinstance(field, Identifier):
        return {
            "minLength": 0 if field.allow_empty else 1,
            "maxLength": field.limit,
            "pattern": r"^[^\x00]*$",
        }
    if isinstance(field, Count):
        return {
            "minimum": 0,
            "maximum": MAX_COUNT,
            # JSON Schema cannot tell 3.0 from 3, the gateway does.
            "description": "A JSON integer, written without a fraction: 3.0 is rejected.",
        }
    if isinstance(field, Severity):
        return {"enum": [*SEVERITIES, "", None], "description": '"", null or absent mean error.'}
    if isinstance(field, Timestamp):
        return {"pattern": PUSHED_TIMESTAMP}
    if isinstance(field, StackTrace):
        return {
            "items": {"type": "string"},
            "description": f"Over {field.max_lines} lines, the middle is cut with a marker line.",
        }
    if isinstance(field, HeaderMap):
        return {
            "additionalProperties": True,
            "description": "Values that are not strings are exported as strings.",
        }
    if isinstance(field, OccurrenceUUID):
        return {"description": "A non-UUID string is mapped to a UUID derived from it."}
    if isinstance(field, CauseChain):
        # The same shape as the error it belongs to, to any depth; old Ruby clients send a
        # string. Past the depth limit the chain is cut with a marker cause.
        return {
            "anyOf": [
                converter.resolve_nested_schema(field.parent),
                {"type": "string"},
                {"type": "null"},
            ],
            "description": f"Causes past {field.max_depth} are replaced by one marker cause.",
        }
    if isinstance(field, Text):
        return {"description": f"Longer than {field.limit} characters, it is cut with a marker."}
    return {}


_CUSTOM_FIELD_TYPES = {
    Text: ("string", None),
    Identifier: ("string", None),
    Timestamp: ("string", "date-time"),
    Count: ("integer", None),
    Severity: ("string", None),
    StackTrace: ("array", None),
    HeaderMap: ("object", None),
    OccurrenceUUID: ("string", None),
    CauseChain: (None, None),  # anyOf, from _custom_field_properties
}


# --- The responses ----------------------------------------------------------------------

_NULLABLE: dict[str, Any] = {"allow_none": True, "required": True}


def _exported_timestamp(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(EXPORTED_TIMESTAMP), required=True, **kwargs)


def _severity() -> fields.String:
    return fields.String(validate=validate.OneOf(SEVERITIES), required=True)


class ExportedErrorSchema(Schema):
    class_ = fields.String(data_key="class", **_NULLABLE)
    message = fields.String(**_NULLABLE)
    stacktrace = fields.List(fields.String(), **_NULLABLE)
    cause = fields.Nested(lambda: ExportedErrorSchema(), **_NULLABLE)


class ExportedHTTPContextSchema(Schema):
    request_method = fields.String(**_NULLABLE)
    request_url = fields.String(**_NULLABLE)
    request_headers = fields.Dict(keys=fields.String(), values=fields.String(), **_NULLABLE)
    request_body = fields.String(**_NULLABLE)


class ExportedOccurrenceSchema(Schema):
    error = fields.Nested(ExportedErrorSchema, required=True)
    uuid = fields.UUID(required=True)
    timestamp = _exported_timestamp()
    severity = _severity()
    http_context = fields.Nested(ExportedHTTPContextSchema, **_NULLABLE)


class ExportedAggregateSchema(Schema):
    aggregation_key = fields.String(validate=validate.Length(min=1), required=True)
    total_count = fields.Integer(
        validate=validate.Range(min=0, max=MAX_EXPORTED_COUNT), required=True
    )
    severity = _severity()
    created_at = _exported_timestamp()
    latest_errors = fields.List(fields.Nested(ExportedOccurrenceSchema), required=True)


class ExportSchema(Schema):
    """What the Periskop server scrapes."""

    aggregated_errors = fields.List(fields.Nested(ExportedAggregateSchema), required=True)
    target_uuid = fields.UUID(required=True, metadata={"description": "The group's own, stable."})


PushSummarySchema = Schema.from_dict(
    {
        item.name: fields.Integer(validate=validate.Range(min=0), required=True)
        for item in dataclasses.fields(PushSummary)
    },
    name="PushSummary",
)


class ErrorResponseSchema(Schema):
    code = fields.Integer(required=True)
    message = fields.String(required=True)
    description = fields.String(required=True)


class InvalidPushResponseSchema(Schema):
    code = fields.Integer(validate=validate.Equal(400), required=True)
    message = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={
            "description": 'Field path (e.g. "aggregated_errors.0.total_count") to messages.'
        },
    )


class ResolvedSchema(Schema):
    group = fields.String(**_NULLABLE)
    resolved = fields.String(required=True)


class ResolveRequestSchema(Schema):
    aggregation_key = fields.String(required=True, validate=validate.Length(min=1))


class WipedSchema(Schema):
    group = fields.String(**_NULLABLE)
    target_uuid = fields.UUID(required=True, metadata={"description": "The group's new one."})


class StatusDatabaseSchema(Schema):
    dialect = fields.String(required=True)
    size_bytes = fields.Integer(validate=validate.Range(min=0), **_NULLABLE)
    # SQLite alone (MAX_DATABASE_BYTES is kept there).
    used_bytes = fields.Integer(
        validate=validate.Range(min=0), metadata={"description": "Bytes of pages in use."}
    )
    budget_bytes = fields.Integer(
        validate=validate.Range(min=0), metadata={"description": "MAX_DATABASE_BYTES."}
    )
    data_limit_bytes = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "What the pages in use may take: the budget less the WAL's."},
    )


class StatusGroupSchema(Schema):
    name = fields.String(**_NULLABLE)
    target_uuid = fields.UUID(required=True)
    exported_keys = fields.Integer(validate=validate.Range(min=0), required=True)
    stored_keys = fields.Integer(validate=validate.Range(min=0), required=True)
    last_push_at = _exported_timestamp(allow_none=True)


class StatusSchema(Schema):
    version = fields.String(required=True)
    database = fields.Nested(StatusDatabaseSchema, required=True)
    groups = fields.List(fields.Nested(StatusGroupSchema), required=True)
    settings = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    authentication = fields.List(
        fields.String(
            validate=validate.OneOf(sorted({role.lower() for role in ROLE_OF_BLUEPRINT.values()}))
        ),
        required=True,
        metadata={"description": "The roles that need credentials."},
    )


# --- The operations ---------------------------------------------------------------------


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# Fresh dicts for every document: apispec replaces the schemas in them by references.
def _text() -> dict[str, Any]:
    return {"text/plain": {"schema": {"type": "string"}}}


def _error() -> dict[str, Any]:
    return _json(ErrorResponseSchema)


@dataclass(frozen=True)
class Operation:
    """One view's documentation: status -> (description, content)."""

    summary: str
    responses: dict
    description: str = ""
    request_body: dict | None = None
    # Views that read the database answer 503 when it is unavailable.
    uses_database: bool = True


def _operations(app: Flask, push_schema: Schema) -> dict[str, Operation]:
    max_bytes = app.config["MAX_BODY_BYTES"]
    return {
        "push.push": Operation(
            summary="Push a client's cumulative state",
            description=(
                "The body is JSON under any Content-Type (or none), optionally compressed "
                "(Content-Encoding gzip, x-gzip or deflate, matching the bytes). Repushing "
                "the same cumulative state changes nothing; a rejected push stores nothing."
            ),
            request_body={"required": True, "content": _json(push_schema)},
            responses={
                200: ("Stored.", _json(PushSummarySchema)),
                400: (
                    "Not a valid push (errors), or a body whose framing is broken "
                    "(description: a bad chunk, or a body cut short).",
                    _json({"anyOf": [InvalidPushResponseSchema, ErrorResponseSchema]}),
                ),
                403: ("A new group past MAX_GROUPS.", _error()),
                408: ("The body stopped arriving before its declared end.", _error()),
                413: (f"Over {max_bytes} bytes, sent or decompressed.", _error()),
                415: ("A Content-Encoding other than gzip, deflate, identity.", _error()),
                507: (
                    "The database at MAX_DATABASE_BYTES (SQLite): retry after Retry-After.",
                    _error(),
                ),
            },
        ),
        "export.export": Operation(
            summary="The export the Periskop server scrapes",
            description=(
                "Sent with Content-Encoding: gzip to a scrape whose Accept-Encoding takes gzip "
                "(the Periskop server's does), plain otherwise."
            ),
            responses={200: ("The group's errors.", _json(ExportSchema))},
        ),
        "health.health": Operation(
            summary="OK while the database answers",
            responses={200: ("OK", _text()), 503: ("The database does not answer.", _text())},
        ),
        "probes.healthy": Operation(
            summary="Liveness: the process answers",
            description="Asks nothing of the database. Open whatever credentials are set.",
            responses={200: ("OK", _text())},
            uses_database=False,
        ),
        "probes.ready": Operation(
            summary="Readiness: the database answers and its schema is current",
            description="Open whatever credentials are set.",
            responses={
                200: ("OK", _text()),
                503: (
                    "The database does not answer, or its schema is not this version's.",
                    _text(),
                ),
            },
        ),
        "admin.resolve": Operation(
            summary="Resolve one error",
            description=(
                "It leaves the export; its count is kept, so when it happens again it comes "
                "back with a count that never went down. The key is percent-encoded (any "
                "key: slashes, a leading one, line breaks)."
            ),
            responses={
                200: ("Resolved.", _json(ResolvedSchema)),
                404: ("No such error is exported.", _error()),
            },
        ),
        "admin.resolve_named": Operation(
            summary="Resolve one error named in the body",
            description=(
                "The same as DELETE of the error, for a key too long for a URL: a key of "
                "1,024 characters outside Latin script is up to 12 KB percent-encoded."
            ),
            request_body={"required": True, "content": _json(ResolveRequestSchema)},
            responses={
                200: ("Resolved.", _json(ResolvedSchema)),
                400: (
                    "Not a JSON object with an aggregation_key.",
                    _json(InvalidPushResponseSchema),
                ),
                404: ("No such error is exported.", _error()),
                413: ("A body over 64 KiB.", _error()),
            },
        ),
        "admin.wipe": Operation(
            summary="Wipe a group",
            description="Everything in it is removed and it gets a new target_uuid.",
            responses={
                200: ("Wiped.", _json(WipedSchema)),
                404: ("Nothing was ever pushed to the group.", _error()),
            },
        ),
        "admin.status": Operation(
            summary="The gateway's status",
            responses={200: ("Version, database, groups, limits.", _json(StatusSchema))},
        ),
        "metrics.metrics": Operation(
            summary="Prometheus metrics",
            responses={200: ("Prometheus text format.", _text())},
        ),
        "openapi.openapi_document": Operation(
            summary="This document",
            responses={200: ("OpenAPI 3.1.", _json({"type": "object"}))},
            uses_database=False,
        ),
    }


def _responses(
    operation: Operation, protected: bool, has_path_parameters: bool, switched_off: bool = False
) -> dict[str, Any]:
    responses = {
        status: _response(description, content)
        for status, (description, content) in operation.responses.items()
    }
    if has_path_parameters and 404 not in responses:
        responses[404] = _response("No such path: a name or key out of its pattern.", _error())
    if switched_off:
        responses[403] = _response("The admin API is off: it has no credentials.", _error())
    if protected:
        responses[401] = _response(
            "Credentials are required.",
            _error(),
            {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Basic realm=…"}},
        )
        responses[429] = _response(
            "Too many failed credentials from this address lately; credentials accepted "
            "before still pass.",
            _error(),
            {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
        )
    if operation.uses_database and 503 not in responses:
        responses[503] = _response(
            "The database is unavailable; nothing was changed. Retry later.",
            _error(),
            {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
        )
    return {str(status): responses[status] for status in sorted(responses)}


def _response(
    description: str, content: dict[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = headers
    return response


# --- The document -----------------------------------------------------------------------

_RULE_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def openapi_path(rule: Rule) -> str:
    """/services/<group:group>/errors -> /services/{group}/errors"""
    return _RULE_ARGUMENT.sub(r"{\2}", rule.rule)


def _path_parameters(app: Flask, rule: Rule) -> list[dict[str, Any]]:
    parameters = []
    for converter, name in _RULE_ARGUMENT.findall(rule.rule):
        regex = app.url_map.converters[converter or "default"].regex
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^(?:{regex})$"},
            }
        )
    return parameters


def _documented_methods(rule: Rule) -> list[str]:
    return sorted(rule.methods - _IMPLICIT_METHODS)  # type: ignore[operator]  # Flask sets them


def build_openapi(app: Flask) -> dict[str, Any]:
    """The OpenAPI document (a dict) of this app, under its configuration."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="periskop-pushgateway",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": (
                "A push gateway for Periskop: short-lived processes push their errors, the "
                "Periskop server scrapes them. Basic auth is asked per role once configured."
            )
        },
    )
    for field_class, (openapi_type, openapi_format) in _CUSTOM_FIELD_TYPES.items():
        plugin.map_to_openapi_type(field_class, openapi_type, openapi_format)
    plugin.converter.add_attribute_function(_custom_field_properties)  # type: ignore[union-attr]
    spec.components.security_scheme(_BASIC_AUTH, {"type": "http", "scheme": "basic"})

    push_schema = build_push_schema(Limits.from_config(app.config))
    operations = _operations(app, push_schema)
    protected_roles = {role for role in set(ROLE_OF_BLUEPRINT.values()) if _configured(app, role)}
    paths: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        operation = operations.get(rule.endpoint)
        if operation is None:
            continue  # tests/test_openapi.py fails for it
        blueprint = rule.endpoint.partition(".")[0]
        protected = ROLE_OF_BLUEPRINT.get(blueprint) in protected_roles
        parameters = _path_parameters(app, rule)
        path = paths.setdefault(openapi_path(rule), {})
        for method in _documented_methods(rule):
            documented: dict[str, Any] = {
                "operationId": _operation_id(method, rule),
                "summary": operation.summary,
                "tags": [blueprint],
                "responses": _responses(
                    operation, protected, bool(parameters), _switched_off(app, blueprint)
                ),
            }
            if operation.description:
                documented["description"] = operation.description
            if parameters:
                documented["parameters"] = parameters
            if operation.request_body:
                documented["requestBody"] = operation.request_body
            if protected:
                documented["security"] = [{_BASIC_AUTH: []}]
            path[method.lower()] = documented
    for path, path_operations in sorted(paths.items()):
        spec.path(path=path, operations=path_operations)
    return spec.to_dict()


def _switched_off(app: Flask, blueprint: str) -> bool:
    """The admin API answers 403 without credentials unless it is opened (auth.py)."""
    return ROLE_OF_BLUEPRINT.get(blueprint) == "ADMIN" and admin_api_off(app.config)


def _configured(app: Flask, role: str) -> bool:
    return bool(app.config.get(f"{role}_USERNAME"))


def _operation_id(method: str, rule: Rule) -> str:
    words = re.findall(r"\w+", _RULE_ARGUMENT.sub(r"\2", rule.rule))
    slash = "_slash" if rule.rule.endswith("/") else ""
    return "_".join([method.lower(), *words]) + slash


def openapi_json(app: Flask) -> bytes:
    """The document as JSON bytes, built on first use and kept with the app."""
    document = app.extensions.get(_EXTENSION)
    if document is None:
        document = app.extensions[_EXTENSION] = orjson.dumps(build_openapi(app))
    return document
