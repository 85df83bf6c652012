"""Over-long parts of a legitimate report are cut, visibly, instead of losing the report."""

import json

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape


def exported(client):
    return by_key(scrape(client))["k"]["latest_errors"][0]


def test_a_large_java_stacktrace_gets_through_whole(client):
    stacktrace = ["java.lang.IllegalStateException: pool exhausted"] + [
        f"\tat com.example.service.Layer{i}.handle(Layer{i}.java:{i + 10})" for i in range(900)
    ]
    pushed = occurrence()
    pushed["error"]["stacktrace"] = stacktrace
    response = post(client, push_body(aggregate("k", 1, [pushed])))
    assert response.status_code == 200
    assert exported(client)["error"]["stacktrace"] == stacktrace


def test_a_stacktrace_over_the_line_limit_keeps_both_ends(make_app):
    client = make_app(MAX_STACKTRACE_LINES=10).test_client()
    pushed = occurrence()
    pushed["error"]["stacktrace"] = [f"line {i}" for i in range(100)]
    assert post(client, push_body(aggregate("k", 1, [pushed]))).status_code == 200
    assert exported(client)["error"]["stacktrace"] == [
        "line 0",
        "line 1",
        "line 2",
        "line 3",
        "line 4",
        "… [91 lines cut by periskop-pushgateway]",
        "line 96",
        "line 97",
        "line 98",
        "line 99",
    ]


def test_over_long_texts_are_cut_with_a_marker(make_app):
    client = make_app(MAX_TEXT_LENGTH=8).test_client()
    pushed = occurrence(
        "a message that is too long",
        http_context={
            "request_method": "GET",
            "request_url": "http://example.com/long/path",
            "request_headers": {"X-Long": "0123456789"},
            "request_body": "short",
        },
    )
    pushed["error"]["stacktrace"] = ["short", "a stack trace line too long"]
    assert post(client, push_body(aggregate("k", 1, [pushed]))).status_code == 200
    occurrence_ = exported(client)
    marker = "more characters cut by periskop-pushgateway]"
    assert occurrence_["error"]["message"] == f"a messag… [18 {marker}"
    assert occurrence_["error"]["stacktrace"] == ["short", f"a stack … [19 {marker}"]
    context = occurrence_["http_context"]
    assert context["request_url"] == f"http://e… [20 {marker}"
    assert context["request_headers"] == {"X-Long": f"01234567… [2 {marker}"}
    assert context["request_body"] == "short"


def chain(depth):
    cause = None
    for level in reversed(range(depth)):
        cause = {"class": "E", "message": f"level {level}", "stacktrace": None, "cause": cause}
    return cause


def test_a_cause_chain_deeper_than_the_limit_is_cut_with_a_marker(client):
    pushed = occurrence()
    pushed["error"]["cause"] = chain(500)
    assert post(client, push_body(aggregate("k", 1, [pushed]))).status_code == 200
    cause, depth = exported(client)["error"]["cause"], 0
    while cause["cause"] is not None:
        assert cause["message"] == f"level {depth}"
        cause, depth = cause["cause"], depth + 1
    assert depth == 32
    assert cause == {
        "class": None,
        "message": "[468 more causes cut by periskop-pushgateway]",
        "stacktrace": None,
        "cause": None,
    }


def test_a_ten_thousand_deep_cause_chain_is_a_400_not_a_crash(client):
    body = (
        '{"aggregated_errors": [{"aggregation_key": "k", "latest_errors": [{"error": '
        + '{"message": "m", "cause": ' * 10_000
        + "null"
        + "}" * 10_000
        + "}]}]}"
    )
    response = client.post("/errors", data=body)
    assert response.status_code == 400
    assert "Not valid JSON" in response.get_json()["errors"]["_body"][0]


def test_limits_on_counts_of_things_are_configurable(make_app):
    client = make_app(MAX_AGGREGATES=2, MAX_OCCURRENCES=1, MAX_KEY_LENGTH=3).test_client()
    assert (
        post(client, push_body(aggregate("abc", 1, [occurrence()]), aggregate("b", 1))).status_code
        == 200
    )
    for body in (
        push_body(*(aggregate(k, 1) for k in "xyz")),
        push_body(aggregate("k", 2, [occurrence(), occurrence()])),
        push_body(aggregate("abcd", 1)),
    ):
        assert post(client, body).status_code == 400, json.dumps(body)[:80]


def test_body_size_limit_is_configurable(make_app):
    client = make_app(MAX_BODY_BYTES=1000).test_client()
    small = push_body(aggregate("k", 1))
    big = push_body(aggregate("k", 1, [occurrence("x" * 1000)]))
    assert post(client, small).status_code == 200
    response = post(client, big)
    assert response.status_code == 413
    assert response.get_json()["message"] == "push too large"
