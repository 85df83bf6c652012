"""The admin API: resolve one error, wipe a group, and the gateway's status."""

import logging

from flask import Blueprint, Response, abort, current_app, jsonify, request

from ... import __version__
from ...config import SETTINGS
from ...errors import InvalidPush, InvalidResolve
from ...groups import DEFAULT_GROUP, describe_group
from ...wire.body import parse_push_document, read_push_body
from ...wire.timestamps import format_rfc3339_ns
from ..auth import ROLE_OF_BLUEPRINT
from . import current_gateway

log = logging.getLogger(__name__)

blueprint = Blueprint("admin", __name__)

# What /-/status shows of the configuration: the limits in force, never credentials.
_SHOWN_SETTINGS = [
    name for name in SETTINGS if name.startswith(("MAX_", "OCCURRENCES", "RETENTION", "PRUNE"))
]


# Merging slashes would redirect /-/errors//key (a key "/key") to the error "key": another one.
@blueprint.delete("/-/errors/<key:aggregation_key>", merge_slashes=False)
@blueprint.delete("/services/<group:group>/-/errors/<key:aggregation_key>", merge_slashes=False)
def resolve(aggregation_key: str, group: str = DEFAULT_GROUP) -> Response:
    # No stored key holds a NUL (a push with one is rejected), and PostgreSQL refuses one even
    # in a query.
    if "\x00" in aggregation_key or not current_gateway().store.resolve(group, aggregation_key):
        abort(404, f"No exported error {aggregation_key!r} in {describe_group(group)}.")
    log.info("resolved group=%s key=%s", group or "-", aggregation_key)
    return jsonify(group=group or None, resolved=aggregation_key)


# The same with the key in a JSON body: a key of MAX_KEY_LENGTH characters outside Latin script
# is up to 12 KB percent-encoded, more than a request line may hold (gunicorn takes 4 KB).
_RESOLVE_BODY_BYTES = 64 * 1024


@blueprint.post("/-/resolve")
@blueprint.post("/services/<group:group>/-/resolve")
def resolve_named(group: str = DEFAULT_GROUP) -> Response:
    body = read_push_body(
        request, _RESOLVE_BODY_BYTES, current_app.config["BODY_READ_TIMEOUT_SECONDS"]
    )
    try:
        key = parse_push_document(body).get("aggregation_key")
    except InvalidPush as error:
        raise InvalidResolve(error.errors) from None
    if type(key) is not str or not key:
        raise InvalidResolve({"aggregation_key": ["A non-empty string is required."]})
    return resolve(key, group)


@blueprint.delete("/-/errors")
@blueprint.delete("/services/<group:group>")
def wipe(group: str = DEFAULT_GROUP) -> Response:
    target_uuid = current_gateway().store.wipe(group)
    if target_uuid is None:
        abort(404, f"Nothing was ever pushed to {describe_group(group)}.")
    log.warning("wiped group=%s new target_uuid=%s", group or "-", target_uuid)
    return jsonify(group=group or None, target_uuid=target_uuid)


@blueprint.get("/-/status")
def status() -> Response:
    store = current_gateway().store
    rows, size = store.status()
    database = {"dialect": store.engine.dialect.name, "size_bytes": size}
    budget_use = store.budget_use()
    if budget_use is not None:
        used, budget = budget_use
        database.update(
            used_bytes=used, budget_bytes=budget.budget_bytes, data_limit_bytes=budget.limit_bytes
        )
    return jsonify(
        version=__version__,
        database=database,
        groups=[
            {
                "name": row.name or None,
                "target_uuid": row.target_uuid,
                "exported_keys": row.exported,
                "stored_keys": row.stored,
                "last_push_at": format_rfc3339_ns(row.last_push_ns) if row.last_push_ns else None,
            }
            for row in rows
        ],
        settings={name: current_app.config[name] for name in _SHOWN_SETTINGS},
        authentication=sorted(
            role.lower()
            for role in set(ROLE_OF_BLUEPRINT.values())
            if current_app.config[f"{role}_USERNAME"]
        ),
    )
