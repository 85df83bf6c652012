"""GET /-/healthy and GET /-/ready: an orchestrator's liveness and readiness probes.

Liveness asks nothing of the database, so that a database outage makes instances not ready
(the load balancer stops sending them traffic) rather than restarted all at once. Both are
open whatever credentials are configured: a load balancer's or kubelet's probe sends none,
and they tell no more than whether the gateway is up.
"""

import logging

from flask import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError

from ...storage.migrate import schema_problem
from . import current_store

log = logging.getLogger(__name__)

blueprint = Blueprint("probes", __name__)


@blueprint.get("/-/healthy")
def healthy() -> Response:
    return Response("OK", mimetype="text/plain")


@blueprint.get("/-/ready")
def ready() -> Response:
    store = current_store()
    try:
        problem = schema_problem(store.engine) or store.backend.disk_problem(store.engine)
    except SQLAlchemyError as error:
        log.warning("not ready: the database does not answer: %s", error)
        return _not_ready("database unavailable")
    if problem:
        log.warning("not ready: %s", problem)
        return _not_ready(problem)
    return Response("OK", mimetype="text/plain")


def _not_ready(reason: str) -> Response:
    return Response(f"not ready: {reason}\n", status=503, mimetype="text/plain")
