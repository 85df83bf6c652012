"""GET /openapi.json: the API, described from the marshmallow schemas (openapi.py)."""

from flask import Blueprint, Response, current_app

from ..openapi import openapi_json

blueprint = Blueprint("openapi", __name__)


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return Response(openapi_json(current_app), mimetype="application/json")
