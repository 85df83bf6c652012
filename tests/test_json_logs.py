"""PERISKOP_PUSHGATEWAY_LOG_FORMAT=json: every line gunicorn and the gateway write is one JSON
object, a push line with the same fields as the text one; text stays the default."""

import json
import sys

import pytest
import requests

from .helpers import aggregate, push_body
from .servers import Gunicorn, production_gunicorn

PUSH_FIELDS = {
    "outcome",
    "from",
    "group",
    "client",
    "aggregates",
    "occurrences",
    "new_occurrences",
    "count_increase",
    "dropped_keys",
    "stale_keys",
    "duration_ms",
}


def serve_command():
    return [sys.executable, "-m", "periskop_pushgateway", "serve", "--bind", "127.0.0.1:{port}"]


@pytest.fixture(params=["gunicorn.conf.py", "serve"])
def json_gateway(request, database_url, tmp_path):
    if request.param == "serve":
        server = Gunicorn(database_url, command=serve_command(), log_path=tmp_path / "log")
    else:
        server = production_gunicorn(database_url, tmp_path)
    server.env["PERISKOP_PUSHGATEWAY_LOG_FORMAT"] = "json"
    return server


def exercise(server):
    """An accepted push, a rejected one, and a scrape; returns the log's lines."""
    with server:
        body = json.dumps(push_body(aggregate("k", 2), target_uuid="job-1"))
        assert requests.post(server.url + "/services/g/errors", data=body).status_code == 200
        bad = requests.post(server.url + "/services/g/errors", data='{"bad', timeout=10)
        assert bad.status_code == 400
        headers = {"User-Agent": 'agent "quoted"', "X-Forwarded-For": "10.1.2.3"}
        assert requests.get(server.url + "/-/errors?x=1", headers=headers).status_code == 200
    return [line for line in server.log_path.read_text().splitlines() if line.strip()]


def test_every_line_is_a_json_object_with_the_push_lines_fields(json_gateway):
    records = [json.loads(line) for line in exercise(json_gateway)]
    assert all(isinstance(record, dict) and "time" in record for record in records)

    [accepted] = [r for r in records if r.get("outcome") == "accepted"]
    assert PUSH_FIELDS <= set(accepted)
    assert accepted["level"] == "INFO"
    assert (accepted["group"], accepted["client"], accepted["count_increase"]) == ("g", "job-1", 2)
    assert accepted["message"].startswith("push outcome=accepted from=127.0.0.1 group=g")

    [rejected] = [r for r in records if r.get("outcome") == "rejected"]
    assert rejected["status"] == 400 and rejected["level"] == "WARNING"
    assert rejected["reason"] and rejected["group"] == "g"

    access = [r for r in records if r.get("logger") == "gunicorn.access"]
    [scrape] = [r for r in access if r["path"] == "/-/errors"]
    assert (scrape["method"], scrape["query"], scrape["status"]) == ("GET", "x=1", 200)
    assert scrape["user_agent"] == 'agent "quoted"'
    assert scrape["forwarded_for"] == "10.1.2.3"
    assert isinstance(scrape["duration_ms"], int) and isinstance(scrape["bytes"], int)
    assert any(r.get("logger") == "gunicorn.error" for r in records)  # "Booting worker" …


def test_text_stays_the_default(database_url, tmp_path):
    lines = exercise(production_gunicorn(database_url, tmp_path))
    assert not any(line.startswith("{") for line in lines)
    assert any(
        " push outcome=accepted from=127.0.0.1 group=g client=job-1 " in line for line in lines
    )


def test_an_unknown_format_is_refused(make_app):
    with pytest.raises(ValueError, match="PERISKOP_PUSHGATEWAY_LOG_FORMAT"):
        from periskop_pushgateway.config import load_config

        load_config({"PERISKOP_PUSHGATEWAY_LOG_FORMAT": "xml"})
