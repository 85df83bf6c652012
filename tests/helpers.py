"""Small builders and readers shared by the tests."""

import json
import time
import uuid


def occurrence(
    message="boom", *, uuid_=None, timestamp="2026-01-01T00:00:00Z", cls="ValueError", **extra
):
    return {
        "error": {
            "class": cls,
            "message": message,
            "stacktrace": ["line 1", "line 2"],
            "cause": None,
        },
        "uuid": uuid_ or str(uuid.uuid4()),
        "timestamp": timestamp,
        "severity": "error",
        "http_context": None,
        **extra,
    }


def aggregate(key, total_count, occurrences=(), **extra):
    return {
        "aggregation_key": key,
        "total_count": total_count,
        "latest_errors": list(occurrences),
        **extra,
    }


def push_body(*aggregates, target_uuid=None):
    body = {"aggregated_errors": list(aggregates)}
    if target_uuid is not None:
        body["target_uuid"] = target_uuid
    return body


def post(client, body, group=None):
    """POST a push the way the Python client does: a JSON string, no Content-Type."""
    path = f"/services/{group}/errors" if group else "/errors"
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data)


def scrape(client, group=None):
    path = f"/services/{group}/-/errors" if group else "/-/errors"
    response = client.get(path)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return json.loads(response.data)


def counts(export):
    return {a["aggregation_key"]: a["total_count"] for a in export["aggregated_errors"]}


def by_key(export):
    return {a["aggregation_key"]: a for a in export["aggregated_errors"]}


class Clock:
    """A store's clock (Store.clock) that moves only when told: days pass in a test."""

    def __init__(self):
        self.now = time.time_ns()

    def __call__(self):
        return self.now

    def advance(self, ns):
        self.now += ns
