"""Property-based: no input produces a 5xx, and valid pushes round-trip into the export."""

import copy
import itertools
import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from periskop_pushgateway.config import load_config
from periskop_pushgateway.wire.fastload import compile_loader
from periskop_pushgateway.wire.schemas import Limits, build_push_schema

from .periskop_server import assert_decodable_by_periskop

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
groups = (f"g{n}" for n in itertools.count())

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)

text = st.text(max_size=40)
optional_text = st.none() | text


@st.composite
def rfc3339(draw):
    moment = draw(st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1)))
    offset = draw(st.integers(-14 * 60, 14 * 60))
    digits = draw(st.integers(0, 9))
    nanos = draw(st.integers(0, 10**9 - 1))
    stamp = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    fraction = f".{nanos:09d}"[: digits + 1] if digits else ""
    zone = draw(st.sampled_from(["Z", "offset"])) if offset == 0 else "offset"
    suffix = (
        "Z"
        if zone == "Z"
        else f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + fraction + suffix


errors = st.recursive(
    st.fixed_dictionaries(
        {
            "class": optional_text,
            "message": optional_text,
            "stacktrace": st.none() | st.lists(text, max_size=5),
        }
    ),
    lambda causes: st.fixed_dictionaries(
        {
            "class": optional_text,
            "message": optional_text,
            "stacktrace": st.none() | st.lists(text, max_size=5),
            "cause": st.none() | text | causes,
        }
    ),
    max_leaves=4,
)
http_contexts = st.none() | st.fixed_dictionaries(
    {
        "request_method": optional_text,
        "request_url": optional_text,
        "request_headers": st.none()
        | st.dictionaries(
            text, text | st.integers() | st.booleans() | st.lists(text, max_size=3), max_size=4
        ),
        "request_body": optional_text,
    }
)
severities = st.sampled_from(["info", "warning", "error", "", None])
occurrences = st.fixed_dictionaries(
    {"error": errors},
    optional={
        "uuid": st.none() | st.uuids().map(str),
        "timestamp": st.none() | rfc3339(),
        "severity": severities,
        "http_context": http_contexts,
    },
)
aggregation_keys = st.text(min_size=1, max_size=60).filter(lambda key: "\x00" not in key)


@st.composite
def valid_pushes(draw):
    keys = draw(st.lists(aggregation_keys, min_size=0, max_size=5, unique=True))
    aggregates = [
        {
            "aggregation_key": key,
            "total_count": draw(st.none() | st.integers(0, 2**53)),
            "severity": draw(severities),
            "created_at": draw(st.none() | rfc3339()),
            "latest_errors": draw(st.lists(occurrences, max_size=12)),
        }
        for key in keys
    ]
    return {"target_uuid": draw(st.none() | st.uuids().map(str)), "aggregated_errors": aggregates}


def mutate(document, path_choice, replacement):
    """Replace one node of the document (chosen by path_choice) with replacement."""
    nodes = []

    def walk(node, parent, key):
        nodes.append((parent, key))
        children = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for child_key, child in children:
            walk(child, node, child_key)

    walk(document, None, None)
    parent, key = nodes[path_choice % len(nodes)]
    if parent is None:
        return replacement
    parent[key] = replacement
    return document


@SETTINGS
@given(body=json_values)
def test_arbitrary_json_never_gets_a_5xx(client, body):
    response = client.post(f"/services/{next(groups)}/errors", data=json.dumps(body))
    assert response.status_code in (200, 400), response.data


@SETTINGS
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_never_get_a_5xx(client, body):
    response = client.post(f"/services/{next(groups)}/errors", data=body)
    assert response.status_code in (200, 400), response.data


@SETTINGS
@given(push=valid_pushes(), path=st.integers(0, 10**6), replacement=json_values)
def test_mutated_pushes_never_get_a_5xx_and_accepted_ones_export_cleanly(
    client, push, path, replacement
):
    group = next(groups)
    body = mutate(copy.deepcopy(push), path, replacement)
    response = client.post(f"/services/{group}/errors", data=json.dumps(body))
    assert response.status_code in (200, 400), response.data
    export = json.loads(client.get(f"/services/{group}/-/errors").data)
    assert_decodable_by_periskop(export)
    if response.status_code == 400:
        assert export["aggregated_errors"] == []


@SETTINGS
@given(push=valid_pushes())
def test_valid_pushes_round_trip_into_the_export(client, push):
    group = next(groups)
    response = client.post(f"/services/{group}/errors", data=json.dumps(push))
    assert response.status_code == 200, response.data
    export = json.loads(client.get(f"/services/{group}/-/errors").data)
    assert_decodable_by_periskop(export)
    exported = {a["aggregation_key"]: a for a in export["aggregated_errors"]}
    assert set(exported) == {a["aggregation_key"] for a in push["aggregated_errors"]}
    for pushed in push["aggregated_errors"]:
        aggregate = exported[pushed["aggregation_key"]]
        expected_count = pushed["total_count"]
        if expected_count is None:
            expected_count = len(pushed["latest_errors"])
        assert aggregate["total_count"] == expected_count
        assert aggregate["severity"] == (pushed["severity"] or "error")
        assert len(aggregate["latest_errors"]) == min(10, len(pushed["latest_errors"]))
        messages = [o["error"]["message"] for o in pushed["latest_errors"]]
        for occurrence in aggregate["latest_errors"]:
            assert occurrence["error"]["message"] in messages


limits = Limits.from_config(load_config({}))
schema = build_push_schema(limits)
fast_load = compile_loader(schema)


def outcome(load, document):
    try:
        return "loaded", load(document)
    except ValidationError as error:
        return "rejected", error.messages


@SETTINGS
@given(push=valid_pushes(), path=st.integers(0, 10**6), replacement=json_values)
def test_the_compiled_loader_agrees_with_marshmallow(push, path, replacement):
    document = mutate(copy.deepcopy(push), path, replacement)
    assert outcome(fast_load, copy.deepcopy(document)) == outcome(schema.load, document)
