"""The floor the gateway is measured against: a minimal Flask app that parses every push with
orjson and answers 200, and answers every scrape with constant bytes as large as the gateway's
export (FLOOR_SCRAPE_BYTES), and its group page with constant bytes as large as the gateway's
(FLOOR_PAGE_BYTES). Served under the same gunicorn settings as the gateway, it is
what the machine, gunicorn and Flask cost before any of the gateway's own work."""

import os

import orjson
from flask import Flask, Response, request

app = Flask(__name__)
SCRAPE_BODY = b" " * int(os.environ.get("FLOOR_SCRAPE_BYTES", "2"))
PAGE_BODY = b" " * int(os.environ.get("FLOOR_PAGE_BYTES", "2"))


@app.post("/errors")
@app.post("/services/<name>/errors")
def push(name=None):
    orjson.loads(request.get_data())
    return Response(b"{}", content_type="application/json")


@app.get("/-/health")
def health():
    return Response(b"{}", content_type="application/json")


@app.get("/-/errors")
@app.get("/services/<name>/-/errors")
def scrape(name=None):
    return Response(SCRAPE_BODY, content_type="application/json")


@app.get("/-/keys")
def group_page():
    return Response(PAGE_BODY, content_type="text/html; charset=utf-8")
