"""GET /openapi.json describes the API as it is: every route, the push schema under the limits
in force, and responses that a live gateway never contradicts (schemathesis)."""

import re
import time
from collections import Counter

import jsonschema_rs
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from periskop_pushgateway.web.views import PAGE_BLUEPRINTS

from .helpers import aggregate, occurrence, post, push_body, scrape
from .servers import gunicorn_on_new_database

IMPLICIT_METHODS = {"HEAD", "OPTIONS"}


def documented_path(rule):
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)


def undocumented_routes(app, document):
    """API routes missing from the document (the pages for people are HTML, not API)."""
    return [
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.endpoint.partition(".")[0] not in PAGE_BLUEPRINTS
        for method in sorted(rule.methods - IMPLICIT_METHODS)
        if method.lower() not in document["paths"].get(documented_path(rule), {})
    ]


def test_the_document_is_valid_openapi(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    schemathesis.openapi.from_dict(response.get_json()).validate()


def test_every_route_is_documented(app, client):
    document = client.get("/openapi.json").get_json()
    assert undocumented_routes(app, document) == []


def test_a_route_added_without_its_description_is_caught(make_app):
    app = make_app()
    app.add_url_rule("/-/new", endpoint="admin.new", view_func=lambda: "new")
    document = app.test_client().get("/openapi.json").get_json()
    assert undocumented_routes(app, document) == ["GET /-/new"]


def test_the_document_is_built_once_per_app(client):
    assert client.get("/openapi.json").data is client.get("/openapi.json").data


def test_credentials_are_documented_where_configured(make_app):
    hashed = "pbkdf2:sha256:1000$salt$" + "0" * 64
    app = make_app(PUSH_USERNAME="jobs", PUSH_PASSWORD_HASH=hashed)
    document = app.test_client().get("/openapi.json").get_json()
    push = document["paths"]["/errors"]["post"]
    assert push["security"] == [{"basicAuth": []}]
    assert "401" in push["responses"]
    assert "Retry-After" in push["responses"]["429"]["headers"]
    export = document["paths"]["/-/errors"]["get"]
    assert "security" not in export
    assert "401" not in export["responses"]
    assert "429" not in export["responses"]


# --- The push schema says what the gateway accepts --------------------------------------

LIMITS = {"MAX_KEY_LENGTH": 8, "MAX_AGGREGATES": 2, "MAX_OCCURRENCES": 2}


def with_occurrence(**fields):
    return push_body(aggregate("key", 1, [occurrence(**fields)]))


def with_error(**fields):
    pushed = occurrence()
    pushed["error"].update(fields)
    return push_body(aggregate("key", 1, [pushed]))


ACCEPTED = [
    {},
    {"aggregated_errors": None, "target_uuid": None, "added_by_a_newer_client": 1},
    push_body(aggregate("12345678", 2**53), target_uuid=""),
    push_body(aggregate("a", 1), aggregate("b", 1)),
    push_body(aggregate("key", None, [occurrence(), occurrence()], severity="")),
    with_occurrence(timestamp="2020-02-17T22:42:45.123456789+01:00", severity=None),
    with_occurrence(timestamp="0001-01-01T00:00:00Z", uuid_="not a uuid"),
    with_occurrence(http_context={"request_headers": {"Accept": ["a", "b"], "X-N": 1}}),
    with_error(cause="an old Ruby client's cause", stacktrace=None),
    with_error(cause={"message": "no class", "cause": {"class": "E"}}),
]

REJECTED = [
    push_body(aggregate("123456789", 1)),
    push_body(aggregate("", 1)),
    push_body(aggregate("nul\x00", 1)),
    push_body({"total_count": 1}),
    push_body(aggregate("a", 1), aggregate("b", 1), aggregate("c", 1)),
    push_body(aggregate("key", 1, [occurrence(), occurrence(), occurrence()])),
    push_body(aggregate("key", -1)),
    push_body(aggregate("key", 2**53 + 1)),
    push_body(aggregate("key", "1")),
    push_body(aggregate("key", True)),
    push_body(aggregate("key", 1.5)),
    push_body(aggregate("key", 1, severity="fatal")),
    with_occurrence(timestamp="2020-02-17T22:42:45"),
    with_occurrence(timestamp="2020-02-30T00:00:00Z"),
    with_occurrence(timestamp="1600-01-01T00:00:00Z"),
    with_occurrence(timestamp="2020-02-17T22:42:45.1234567891Z"),
    with_occurrence(error=None),
    with_occurrence(http_context={"request_headers": "Accept: */*"}),
    with_error(cause=5),
    with_error(stacktrace=[1]),
    with_error(message={"text": "boom"}),
    {"target_uuid": "x" * 256},
]


@pytest.fixture
def limited_app(make_app):
    return make_app(**LIMITS)


@pytest.fixture
def push_validator(limited_app):
    document = limited_app.test_client().get("/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/Push", "components": document["components"]}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_the_schema_accepts_the_gateway_accepts(limited_app, push_validator, body):
    assert push_validator.is_valid(body)
    assert post(limited_app.test_client(), body).status_code == 200


@pytest.mark.parametrize("body", REJECTED)
def test_what_the_schema_rejects_the_gateway_rejects(limited_app, push_validator, body):
    assert not push_validator.is_valid(body)
    assert post(limited_app.test_client(), body).status_code == 400


# --- A live gateway never contradicts its document --------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openapi")
    # The admin API open, so that schemathesis exercises it too (off, it answers 403).
    with gunicorn_on_new_database(
        folder, env={"PERISKOP_PUSHGATEWAY_ADMIN_OPEN": "true"}
    ) as server:
        yield server


def seed(url):
    """Something to export, resolve and wipe besides what schemathesis pushes."""
    for prefix in ("", "/services/nightly"):
        body = push_body(aggregate("ValueError@a", 3, [occurrence()]), target_uuid="seed")
        response = requests.post(f"{url}{prefix}/errors", json=body, timeout=30)
        assert response.status_code == 200, response.text


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and generation mode: the run stays well under a minute on two cores.
MAX_EXAMPLES = 25


MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
METHOD_ORDER = {"POST": 0, "GET": 1, "DELETE": 2}


def operations_in_order(schema):
    """Pushes first, so that the exports hold what was pushed; deletions last."""
    operations = [schema[path][method] for path in schema for method in schema[path]]
    return sorted(operations, key=lambda operation: (METHOD_ORDER[operation.method.upper()],))


def exercise(operation, mode, counter):
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def calls_answer_as_documented(case):
        counter[operation.label, mode] += 1
        case.call_and_validate(checks=CHECKS)

    calls_answer_as_documented()


def cases_on_what_was_pushed(schema, url):
    """What random data rarely reaches: every group's export, holding what was pushed, and a
    resolve and a wipe that succeed."""
    for group in requests.get(url + "/-/status", timeout=30).json()["groups"]:
        if group["name"] is None:
            yield schema["/-/errors"]["GET"].Case()
        else:
            export = schema["/services/{group}/-/errors"]["GET"]
            yield export.Case(path_parameters={"group": group["name"]})
    key = {"group": "resolved-here", "aggregation_key": "ValueError@a"}
    yield schema["/services/{group}/errors"]["POST"].Case(
        path_parameters={"group": key["group"]},
        body=push_body(aggregate(key["aggregation_key"], 1, [occurrence()])),
        media_type="application/json",
    )
    yield schema["/services/{group}/-/errors/{aggregation_key}"]["DELETE"].Case(path_parameters=key)
    yield schema["/services/{group}"]["DELETE"].Case(path_parameters={"group": key["group"]})


def test_a_live_gateway_answers_as_documented(gateway):
    seed(gateway.url)
    # schemathesis.pytest.from_fixture does not run under pytest 9 (Node._nodeid is gone),
    # so each operation's cases are drawn here, from the document the gateway serves.
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
    calls = Counter()
    failures = {}
    started = time.monotonic()
    for operation in operations_in_order(schema):
        for mode in MODES:
            try:
                exercise(operation, mode, calls)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without inputs
            except Exception as failure:  # noqa: BLE001 - every operation's failures are reported
                failures[f"{operation.label} ({mode.value})"] = failure
    for case in cases_on_what_was_pushed(schema, gateway.url):
        calls[case.operation.label, "chosen"] += 1
        try:
            case.call_and_validate(checks=CHECKS)
        except Exception as failure:  # noqa: BLE001
            failures[f"{case.operation.label} {case.path_parameters}"] = failure
    elapsed = time.monotonic() - started
    operations = {label for label, _mode in calls}
    print(f"schemathesis: {len(operations)} operations, {calls.total()} calls, {elapsed:.1f} s")
    assert len(operations) == sum(len(schema[path]) for path in schema)
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())


# --- Found by reading the document against the app --------------------------------------


@pytest.mark.parametrize("key", ["%00", "a%00b", "%2Fstarts-with-a-slash"])
def test_a_key_no_push_can_hold_or_the_path_cannot_name_is_a_404(client, key):
    post(client, push_body(aggregate("starts-with-a-slash", 1)))
    post(client, push_body(aggregate("starts-with-a-slash", 1)), group="nightly")
    for prefix in ("", "/services/nightly"):
        response = client.delete(f"{prefix}/-/errors/{key}")
        assert response.status_code == 404, response.data
    assert scrape(client)["aggregated_errors"]
