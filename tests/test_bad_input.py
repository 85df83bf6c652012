"""Whatever a client sends, the gateway answers clearly and stores nothing of a bad push.

Each case is pushed to a group holding a good push; that group's export must be unchanged byte
for byte, and the rejection must show up as the gateway's own report in the default export.
"""

import copy
import gzip
import json
import zlib

import pytest

from .helpers import aggregate, by_key, counts, occurrence, push_body, scrape

GROUP = "victim"


def valid_push():
    return push_body(
        aggregate(
            "k",
            3,
            [
                occurrence("a"),
                occurrence(
                    "b",
                    http_context={
                        "request_method": "GET",
                        "request_url": "http://x/",
                        "request_headers": {"A": "b"},
                        "request_body": None,
                    },
                ),
            ],
        ),
        target_uuid="p",
    )


def mutated(change):
    """A valid push with one thing wrong; `change` edits it in place."""
    body = copy.deepcopy(valid_push())
    change(body)
    return json.dumps(body).encode()


def setter(path, value):
    def change(body):
        target = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def deleter(path):
    def change(body):
        target = body
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


AGG = ("aggregated_errors", 0)
OCC = (*AGG, "latest_errors", 1)
ERR = (*OCC, "error")


def nested_causes(depth):
    return "".join('{"message":"m","cause":' for _ in range(depth)) + "null" + "}" * depth


# (id, body bytes, extra headers, status, error field or None for a 4xx without field errors)
CASES = [
    ("not json", b"{not json", {}, 400, "_body"),
    ("invalid utf-8", b'{"target_uuid": "\xff\xfe"}', {}, 400, "_body"),
    ("empty body", b"", {}, 400, "_body"),
    ("json array", b"[]", {}, 400, "_body"),
    ("json string", b'"push"', {}, 400, "_body"),
    ("json number", b"42", {}, 400, "_body"),
    ("json null", b"null", {}, 400, "_body"),
    ("trailing garbage", b"{} x", {}, 400, "_body"),
    ("NaN literal", b'{"aggregated_errors": NaN}', {}, 400, "_body"),
    ("lone surrogate", b'{"target_uuid": "\\ud800"}', {}, 400, "_body"),
    ("nested deeper than json allows", b'{"a":' * 2000 + b"1" + b"}" * 2000, {}, 400, "_body"),
    (
        "aggregated_errors a string",
        mutated(setter(("aggregated_errors",), "x")),
        {},
        400,
        "aggregated_errors",
    ),
    (
        "aggregated_errors an object",
        mutated(setter(("aggregated_errors",), {})),
        {},
        400,
        "aggregated_errors",
    ),
    ("aggregate a string", mutated(setter(AGG, "x")), {}, 400, "aggregated_errors.0._schema"),
    (
        "missing aggregation_key",
        mutated(deleter((*AGG, "aggregation_key"))),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "empty aggregation_key",
        mutated(setter((*AGG, "aggregation_key"), "")),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "null aggregation_key",
        mutated(setter((*AGG, "aggregation_key"), None)),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "numeric aggregation_key",
        mutated(setter((*AGG, "aggregation_key"), 7)),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "aggregation_key too long",
        mutated(setter((*AGG, "aggregation_key"), "k" * 1025)),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "aggregation_key with NUL",
        mutated(setter((*AGG, "aggregation_key"), "a\x00b")),
        {},
        400,
        "aggregated_errors.0.aggregation_key",
    ),
    (
        "total_count a string",
        mutated(setter((*AGG, "total_count"), "12")),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "total_count negative",
        mutated(setter((*AGG, "total_count"), -1)),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "total_count over 2^53",
        mutated(setter((*AGG, "total_count"), 2**53 + 1)),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "total_count beyond 64 bits",
        mutated(setter((*AGG, "total_count"), 10**30)),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "total_count a float",
        mutated(setter((*AGG, "total_count"), 1.5)),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "total_count a boolean",
        mutated(setter((*AGG, "total_count"), True)),
        {},
        400,
        "aggregated_errors.0.total_count",
    ),
    (
        "unknown severity",
        mutated(setter((*AGG, "severity"), "fatal")),
        {},
        400,
        "aggregated_errors.0.severity",
    ),
    (
        "numeric severity",
        mutated(setter((*AGG, "severity"), 3)),
        {},
        400,
        "aggregated_errors.0.severity",
    ),
    (
        "unknown occurrence severity",
        mutated(setter((*OCC, "severity"), "critical")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.severity",
    ),
    (
        "unparseable created_at",
        mutated(setter((*AGG, "created_at"), "yesterday")),
        {},
        400,
        "aggregated_errors.0.created_at",
    ),
    (
        "impossible date",
        mutated(setter((*OCC, "timestamp"), "2020-02-30T00:00:00Z")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.timestamp",
    ),
    (
        "timestamp without zone",
        mutated(setter((*OCC, "timestamp"), "2020-01-01T00:00:00")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.timestamp",
    ),
    (
        "numeric timestamp",
        mutated(setter((*OCC, "timestamp"), 1581979365)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.timestamp",
    ),
    (
        "timestamp out of range",
        mutated(setter((*OCC, "timestamp"), "3000-01-01T00:00:00Z")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.timestamp",
    ),
    (
        "latest_errors an object",
        mutated(setter((*AGG, "latest_errors"), {})),
        {},
        400,
        "aggregated_errors.0.latest_errors",
    ),
    (
        "occurrence a string",
        mutated(setter(OCC, "x")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1._schema",
    ),
    ("missing error", mutated(deleter(ERR)), {}, 400, "aggregated_errors.0.latest_errors.1.error"),
    (
        "null error",
        mutated(setter(ERR, None)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error",
    ),
    (
        "error a string",
        mutated(setter(ERR, "boom")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error._schema",
    ),
    (
        "message an object",
        mutated(setter((*ERR, "message"), {"text": "x"})),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.message",
    ),
    (
        "numeric class",
        mutated(setter((*ERR, "class"), 7)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.class",
    ),
    (
        "stacktrace a number",
        mutated(setter((*ERR, "stacktrace"), 12)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.stacktrace",
    ),
    (
        "stacktrace a string",
        mutated(setter((*ERR, "stacktrace"), "line 1")),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.stacktrace",
    ),
    (
        "stacktrace line a number",
        mutated(setter((*ERR, "stacktrace"), ["a", "b", 3])),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.stacktrace.2",
    ),
    (
        "cause a number",
        mutated(setter((*ERR, "cause"), 5)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.cause",
    ),
    (
        "bad field deep in the cause chain",
        mutated(setter((*ERR, "cause"), {"message": "a", "cause": {"message": 1}})),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.error.cause.cause.message",
    ),
    (
        "http_context a list",
        mutated(setter((*OCC, "http_context"), [])),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.http_context._schema",
    ),
    (
        "request_headers a list",
        mutated(setter((*OCC, "http_context", "request_headers"), ["a"])),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.http_context.request_headers",
    ),
    (
        "request_body a number",
        mutated(setter((*OCC, "http_context", "request_body"), 1)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.http_context.request_body",
    ),
    (
        "uuid a number",
        mutated(setter((*OCC, "uuid"), 1)),
        {},
        400,
        "aggregated_errors.0.latest_errors.1.uuid",
    ),
    ("target_uuid a number", mutated(setter(("target_uuid",), 1)), {}, 400, "target_uuid"),
    ("target_uuid too long", mutated(setter(("target_uuid",), "u" * 256)), {}, 400, "target_uuid"),
    (
        "too many aggregates",
        json.dumps(push_body(*(aggregate(f"k{i}", 1) for i in range(1001)))).encode(),
        {},
        400,
        "aggregated_errors",
    ),
    (
        "too many occurrences",
        json.dumps(push_body(aggregate("k", 1, [occurrence() for _ in range(101)]))).encode(),
        {},
        400,
        "aggregated_errors.0.latest_errors",
    ),
    (
        "unsupported content encoding",
        json.dumps(valid_push()).encode(),
        {"Content-Encoding": "br"},
        415,
        None,
    ),
    (
        "gzip header on a plain body",
        json.dumps(valid_push()).encode(),
        {"Content-Encoding": "gzip"},
        400,
        "_body",
    ),
    (
        "truncated gzip",
        gzip.compress(json.dumps(valid_push()).encode())[:-12],
        {"Content-Encoding": "gzip"},
        400,
        "_body",
    ),
    ("gzip of invalid json", gzip.compress(b"{nope"), {"Content-Encoding": "gzip"}, 400, "_body"),
    (
        "gzip body labelled deflate",
        gzip.compress(json.dumps(valid_push()).encode()),
        {"Content-Encoding": "deflate"},
        400,
        "_body",
    ),
    (
        "zlib body labelled gzip",
        zlib.compress(json.dumps(valid_push()).encode()),
        {"Content-Encoding": "gzip"},
        400,
        "_body",
    ),
    (
        "zlib body labelled x-gzip",
        zlib.compress(json.dumps(valid_push()).encode()),
        {"Content-Encoding": "x-gzip"},
        400,
        "_body",
    ),
    (
        "gzip body without Content-Encoding",
        gzip.compress(json.dumps(valid_push()).encode()),
        {},
        400,
        "_body",
    ),
    (
        "zlib body labelled identity",
        zlib.compress(json.dumps(valid_push()).encode()),
        {"Content-Encoding": "identity"},
        400,
        "_body",
    ),
    (
        "a zlib member after a gzip one",
        gzip.compress(json.dumps(valid_push()).encode()) + zlib.compress(b" "),
        {"Content-Encoding": "gzip"},
        400,
        "_body",
    ),
    ("body over the size limit", b" " * (10 * 1024 * 1024 + 1) + b"{}", {}, 413, None),
    (
        "gzip bomb",
        gzip.compress(b" " * (11 * 1024 * 1024) + b"{}"),
        {"Content-Encoding": "gzip"},
        413,
        None,
    ),
]


def rejections_reported(client):
    return sum(
        a["total_count"]
        for a in scrape(client)["aggregated_errors"]
        if a["aggregation_key"].endswith("@periskop-pushgateway")
    )


@pytest.fixture
def victim(client):
    assert (
        client.post(f"/services/{GROUP}/errors", data=json.dumps(valid_push())).status_code == 200
    )
    return client


def test_there_are_at_least_forty_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 40
    assert len({case[1] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "body, headers, status, field", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_push_is_rejected_and_changes_nothing(victim, body, headers, status, field):
    client = victim
    before = client.get(f"/services/{GROUP}/-/errors").data
    reported = rejections_reported(client)

    response = client.post(f"/services/{GROUP}/errors", data=body, headers=headers)

    assert response.status_code == status, response.data[:500]
    error = response.get_json()
    assert error["code"] == status
    if field is None:
        assert error["description"]
    else:
        assert error["message"] == "invalid push"
        assert field in error["errors"], error["errors"]
    assert client.get(f"/services/{GROUP}/-/errors").data == before
    assert rejections_reported(client) == reported + 1


def test_one_bad_occurrence_among_fifty_stores_none_of_them(client):
    occurrences = [occurrence(str(i)) for i in range(50)]
    occurrences[37]["timestamp"] = "not a time"
    body = push_body(
        *(aggregate(f"k{a}", 10, occurrences[a * 10 : a * 10 + 10]) for a in range(5)),
        target_uuid="p",
    )
    response = client.post(f"/services/{GROUP}/errors", data=json.dumps(body))
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["aggregated_errors.3.latest_errors.7.timestamp"]
    assert scrape(client, GROUP)["aggregated_errors"] == []


def test_rejections_are_reported_in_the_gateways_own_export_without_secrets(client):
    client.post(
        f"/services/{GROUP}/errors",
        data="{oops",
        headers={
            "Authorization": "Basic c2VjcmV0",
            "Cookie": "session=1",
            "X-Api-Key": "k",
            "X-Auth-Token": "a custom secret",
            "User-Agent": "nightly-job/1.0",
        },
    )
    [report] = by_key(scrape(client))["InvalidPush@periskop-pushgateway"]["latest_errors"]
    assert report["error"]["class"] == "InvalidPush"
    assert f"group '{GROUP}'" in report["error"]["message"]
    assert "Not valid JSON" in report["error"]["message"]
    context = report["http_context"]
    assert context["request_method"] == "POST"
    assert context["request_url"].endswith(f"/services/{GROUP}/errors")
    assert context["request_body"] is None
    # Only headers known to be harmless: a custom token header is no secret the gateway knows.
    assert context["request_headers"]["User-Agent"] == "nightly-job/1.0"
    assert set(context["request_headers"]) <= {"User-Agent", "Host", "Content-Length"}


def test_a_flood_of_bad_pushes_grows_a_count_not_the_storage(client, database_url):
    for i in range(300):
        client.post("/errors", data=f"{{bad {i}")
    report = by_key(scrape(client))["InvalidPush@periskop-pushgateway"]
    assert report["total_count"] == 300
    assert len(report["latest_errors"]) == 10


@pytest.mark.sqlite_only  # PostgreSQL's commits are durable as they return
def test_a_rejected_push_waits_for_no_flush_its_records_go_with_the_next(app, client):
    """A rejected push's report and note acknowledge nothing: they are not flushed before its
    answer (a flood of bad pushes would cost two flushes each), but with the next push's."""
    store = app.extensions["periskop_pushgateway"].store
    assert client.post("/errors", data=json.dumps(push_body(aggregate("k", 1)))).status_code == 200
    assert not store.unflushed()
    assert client.post("/errors", data="{bad").status_code == 400
    assert store.unflushed()
    assert client.post("/errors", data=json.dumps(push_body(aggregate("k", 2)))).status_code == 200
    assert not store.unflushed()
    assert by_key(scrape(client))["InvalidPush@periskop-pushgateway"]["total_count"] == 1


def test_deflate_and_gzip_bodies_are_accepted(client):
    body = json.dumps(push_body(aggregate("k", 2), target_uuid="p")).encode()
    assert (
        client.post(
            "/errors", data=gzip.compress(body), headers={"Content-Encoding": "gzip"}
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/errors", data=zlib.compress(body), headers={"Content-Encoding": "deflate"}
        ).status_code
        == 200
    )
    assert by_key(scrape(client))["k"]["total_count"] == 2


def test_x_gzip_is_gzip(client):
    body = json.dumps(push_body(aggregate("k", 2), target_uuid="p")).encode()
    response = client.post(
        "/errors", data=gzip.compress(body), headers={"Content-Encoding": "X-Gzip"}
    )
    assert response.status_code == 200, response.data
    assert by_key(scrape(client))["k"]["total_count"] == 2


@pytest.mark.parametrize(
    "label, compress, message",
    [
        (
            "deflate",
            gzip.compress,
            "Content-Encoding 'deflate' needs a zlib stream (RFC 9110's "
            "deflate), but the body is a gzip stream.",
        ),
        (
            "gzip",
            zlib.compress,
            "Content-Encoding 'gzip' needs a gzip stream, but the body is a zlib stream.",
        ),
        (
            "x-gzip",
            zlib.compress,
            "Content-Encoding 'x-gzip' needs a gzip stream, but the body is a zlib stream.",
        ),
        (
            "deflate",
            lambda body: zlib.compress(body)[2:-4],
            "Content-Encoding 'deflate' needs "
            "a zlib stream (RFC 9110's deflate), but the body is neither a zlib nor a gzip "
            "stream.",
        ),
        (
            "gzip",
            lambda body: body,
            "Content-Encoding 'gzip' needs a gzip stream, but the body is uncompressed JSON.",
        ),
        (
            "",
            gzip.compress,
            "No Content-Encoding, but the body is a gzip stream: say Content-Encoding: gzip.",
        ),
        (
            "identity",
            zlib.compress,
            "Content-Encoding 'identity', but the body is a zlib "
            "stream: say Content-Encoding: deflate.",
        ),
    ],
    ids=[
        "gzip as deflate",
        "zlib as gzip",
        "zlib as x-gzip",
        "raw deflate as deflate",
        "plain as gzip",
        "gzip unlabelled",
        "zlib as identity",
    ],
)
def test_a_body_whose_bytes_are_not_its_encoding_is_told_what_they_are(
    client, label, compress, message
):
    body = compress(json.dumps(push_body(aggregate("k", 2))).encode())
    headers = {"Content-Encoding": label} if label else {}
    response = client.post("/errors", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"_body": [message]}
    assert "k" not in counts(scrape(client))


def test_a_multi_member_gzip_body_is_one_body(client):
    body = json.dumps(push_body(aggregate("k", 3), target_uuid="p")).encode()
    members = b"".join(gzip.compress(body[i : i + 10]) for i in range(0, len(body), 10))
    response = client.post("/errors", data=members, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.data
    assert by_key(scrape(client))["k"]["total_count"] == 3


@pytest.mark.parametrize(
    "tail, status",
    [(b"garbage", 400), (gzip.compress(b" ") * 16, 400), (gzip.compress(b" " * 2**20), 413)],
    ids=["garbage after a member", "too many members", "over the limit together"],
)
def test_what_follows_a_gzip_member_is_held_to_the_rules(make_app, tail, status):
    client = make_app(MAX_BODY_BYTES=2**20).test_client()
    body = gzip.compress(json.dumps(push_body(aggregate("k", 3))).encode()) + tail
    response = client.post("/errors", data=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == status
    assert "k" not in counts(scrape(client))
