"""GET /metrics: Prometheus text format."""

from flask import Blueprint, Response

from ...metrics import render_metrics
from . import current_store

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    body, content_type = render_metrics(current_store())
    return Response(body, content_type=content_type)
