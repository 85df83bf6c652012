"""GET /-/errors and GET /services/<name>/-/errors: what the Periskop server scrapes."""

import os

from flask import Blueprint, Response, request
from werkzeug.wsgi import FileWrapper

from ...groups import DEFAULT_GROUP
from . import current_store

blueprint = Blueprint("export", __name__)
_PIECE_BYTES = 256 * 1024


@blueprint.get("/-/errors")
@blueprint.get("/-/errors/")
@blueprint.get("/services/<group:group>/-/errors")
@blueprint.get("/services/<group:group>/-/errors/")
def export(group: str = DEFAULT_GROUP) -> Response:
    # The Periskop server's HTTP client (Go's) asks for gzip: a scrape of a large group then
    # sends a fraction of the bytes, compressed once per change of the group.
    encoding = "gzip" if request.accept_encodings["gzip"] else None
    body = current_store().export(group, encoding)
    if isinstance(body, bytes):
        response = Response(body, mimetype="application/json")
    else:
        # A cached export, sent as it is read. Not with sendfile (wrap_file): on loopback that
        # took a third longer for a 10 MB export than writing it from memory, while pieces of
        # this size take as long and hold only one piece in memory.
        response = Response(
            FileWrapper(body, _PIECE_BYTES), mimetype="application/json", direct_passthrough=True
        )
        response.content_length = os.fstat(body.fileno()).st_size
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.vary.add("Accept-Encoding")
    return response
