"""GET /-/health: OK while the database answers."""

import logging

from flask import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError

from . import current_store

log = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


@blueprint.get("/-/health")
def health() -> Response:
    try:
        current_store().healthy()
    except SQLAlchemyError as error:
        log.warning("health check failed: %s", error)
        return Response("database unavailable\n", status=503, mimetype="text/plain")
    return Response("OK", mimetype="text/plain")
