"""POST /errors and POST /services/<name>/errors: accept a client's cumulative state."""

import logging

import orjson
from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from ..errors import InvalidPush
from ..schemas import push_schema
from . import DEFAULT_GROUP, current_store

log = logging.getLogger(__name__)

blueprint = Blueprint("push", __name__)


@blueprint.post("/errors")
@blueprint.post("/services/<group:group>/errors")
def push(group=DEFAULT_GROUP):
    # Clients send JSON under any content type (the Python client sends none, the Scala
    # client a form type), so the raw body is read and never parsed as a form.
    document = _parse_json(request.get_data(cache=False))
    try:
        loaded = push_schema.load(document)
    except ValidationError as error:
        raise InvalidPush(error.messages) from None
    summary = current_store().ingest(group, loaded)
    log.info(
        "push from=%s group=%s client=%s aggregates=%d new_occurrences=%d count_increase=%d",
        request.remote_addr,
        group or "-",
        loaded["target_uuid"] or "-",
        summary.aggregates,
        summary.new_occurrences,
        summary.count_increase,
    )
    return jsonify(
        aggregates=summary.aggregates,
        new_occurrences=summary.new_occurrences,
        count_increase=summary.count_increase,
    )


def _parse_json(body):
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidPush({"_body": [f"Not valid JSON: {error}"]}) from None
    if type(document) is not dict:
        raise InvalidPush({"_body": ["A push must be a JSON object."]})
    return document
