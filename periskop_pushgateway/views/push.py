"""POST /errors and POST /services/<name>/errors: accept a client's cumulative state."""

import dataclasses
import logging

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError

from ..body import read_push_document
from ..errors import InvalidPush, PushRejected
from ..self_report import report_rejection
from . import DEFAULT_GROUP, current_gateway

log = logging.getLogger(__name__)

blueprint = Blueprint("push", __name__)


@blueprint.post("/errors")
@blueprint.post("/services/<group:group>/errors")
def push(group=DEFAULT_GROUP):
    gateway = current_gateway()
    try:
        # Clients send JSON under any content type (the Python client sends none, the Scala
        # client a form type), so the raw body is read and never parsed as a form.
        document = read_push_document(request, current_app.config["MAX_BODY_BYTES"])
        try:
            loaded = gateway.load_push(document)
        except ValidationError as error:
            raise InvalidPush(error.messages) from None
    except PushRejected as rejection:
        report_rejection(gateway, request, group, rejection)
        raise
    summary = gateway.store.ingest(group, loaded)
    log.info(
        "push from=%s group=%s client=%s aggregates=%d new_occurrences=%d count_increase=%d"
        " dropped_keys=%d",
        request.remote_addr,
        group or "-",
        loaded["target_uuid"] or "-",
        summary.aggregates,
        summary.new_occurrences,
        summary.count_increase,
        summary.dropped_keys,
    )
    gateway.maintenance.note_dropped_keys(group, summary.dropped_keys)
    gateway.maintenance.after_push()
    return jsonify(dataclasses.asdict(summary))
