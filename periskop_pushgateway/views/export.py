"""GET /-/errors and GET /services/<name>/-/errors: what the Periskop server scrapes."""

from flask import Blueprint, Response

from . import DEFAULT_GROUP, current_store

blueprint = Blueprint("export", __name__)


@blueprint.get("/-/errors")
@blueprint.get("/-/errors/")
@blueprint.get("/services/<group:group>/-/errors")
@blueprint.get("/services/<group:group>/-/errors/")
def export(group=DEFAULT_GROUP):
    return Response(current_store().export(group), mimetype="application/json")
