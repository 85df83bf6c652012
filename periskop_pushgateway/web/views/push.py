"""POST /errors and POST /services/<name>/errors: accept a client's cumulative state."""

import orjson
from flask import Blueprint, Response, current_app, request

from ...groups import DEFAULT_GROUP
from ...services.push import accept_push
from . import current_gateway

blueprint = Blueprint("push", __name__)


@blueprint.post("/errors")
@blueprint.post("/services/<group:group>/errors")
def push(group: str = DEFAULT_GROUP) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    summary = accept_push(current_gateway(), request, group, app)
    # orjson writes the summary, a dataclass, in a fraction of jsonify's time.
    return app.response_class(orjson.dumps(summary), mimetype="application/json")
