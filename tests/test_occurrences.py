"""Occurrences: own uuid and timestamp, de-duplicated by uuid, newest N per key, and every
client quirk of docs/protocol.md exported in types the Go Periskop server decodes."""

import uuid

import pytest

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape


def exported_occurrences(client, key="k", group=None):
    return by_key(scrape(client, group))[key]["latest_errors"]


def stamp(second):
    return f"2026-01-01T00:00:{second:02d}Z"


def test_occurrences_keep_their_own_uuid_and_timestamp(client):
    pushed = occurrence(
        uuid_="5d9893c6-51d6-11ea-8aad-f894c260afe5", timestamp="2020-02-17T22:42:45.123456789Z"
    )
    post(client, push_body(aggregate("k", 1, [pushed]), target_uuid="p"))
    [exported] = exported_occurrences(client)
    assert exported["uuid"] == "5d9893c6-51d6-11ea-8aad-f894c260afe5"
    assert exported["timestamp"] == "2020-02-17T22:42:45.123456789Z"


def test_timestamps_are_exported_in_utc_with_z(client):
    pushed = [
        occurrence(timestamp="2026-06-01T12:00:00.250+02:00"),
        occurrence(timestamp="2026-06-01T12:00:01-00:30"),
    ]
    post(client, push_body(aggregate("k", 2, pushed)))
    assert [o["timestamp"] for o in exported_occurrences(client)] == [
        "2026-06-01T10:00:00.25Z",
        "2026-06-01T12:30:01Z",
    ]


def test_only_the_newest_ten_are_kept_oldest_first(client):
    pushed = [occurrence(str(second), timestamp=stamp(second)) for second in range(15)]
    post(client, push_body(aggregate("k", 15, pushed[:8]), target_uuid="p"))
    post(client, push_body(aggregate("k", 15, pushed[8:]), target_uuid="p"))
    messages = [o["error"]["message"] for o in exported_occurrences(client)]
    assert messages == [str(second) for second in range(5, 15)]


def test_newest_n_is_configurable(make_app):
    client = make_app(OCCURRENCES_PER_KEY=3).test_client()
    pushed = [occurrence(str(second), timestamp=stamp(second)) for second in range(6)]
    post(client, push_body(aggregate("k", 6, pushed)))
    assert [o["error"]["message"] for o in exported_occurrences(client)] == ["3", "4", "5"]


def test_a_state_pushed_again_after_the_bound_was_lowered_keeps_the_newest_n(make_app):
    pushed = [occurrence(str(second), timestamp=stamp(second)) for second in range(5)]
    body = push_body(aggregate("k", 5, pushed), target_uuid="p")
    post(make_app(OCCURRENCES_PER_KEY=5).test_client(), body)
    # Restarted with a lower bound, the same state again: every occurrence is stored already,
    # and the oldest past the new bound go.
    client = make_app(OCCURRENCES_PER_KEY=3).test_client()
    assert post(client, body).get_json()["new_occurrences"] == 0
    assert [o["error"]["message"] for o in exported_occurrences(client)] == ["2", "3", "4"]


def test_an_old_occurrence_pushed_late_does_not_displace_newer_ones(client):
    post(
        client,
        push_body(
            aggregate("k", 10, [occurrence(str(s), timestamp=stamp(s + 10)) for s in range(10)])
        ),
    )
    response = post(client, push_body(aggregate("k", 1, [occurrence("old", timestamp=stamp(1))])))
    assert response.get_json()["new_occurrences"] == 0
    messages = [o["error"]["message"] for o in exported_occurrences(client)]
    assert "old" not in messages and len(messages) == 10


def test_occurrences_are_deduplicated_by_uuid(client):
    same = occurrence("first", uuid_="11111111-1111-1111-1111-111111111111")
    post(client, push_body(aggregate("k", 1, [same]), target_uuid="p"))
    again = dict(same, error={**same["error"], "message": "changed"})
    post(client, push_body(aggregate("k", 2, [again, occurrence("other")]), target_uuid="p"))
    assert sorted(o["error"]["message"] for o in exported_occurrences(client)) == ["first", "other"]


def test_uuids_are_compared_in_canonical_form(client):
    post(
        client,
        push_body(
            aggregate(
                "k",
                1,
                [
                    occurrence(uuid_="AAAAAAAA-1111-1111-1111-111111111111"),
                    occurrence(uuid_="aaaaaaaa-1111-1111-1111-111111111111"),
                ],
            )
        ),
    )
    [exported] = exported_occurrences(client)
    assert exported["uuid"] == "aaaaaaaa-1111-1111-1111-111111111111"


def test_null_http_context_and_null_cause_round_trip(client):
    post(client, push_body(aggregate("k", 1, [occurrence(http_context=None)])))
    [exported] = exported_occurrences(client)
    assert exported["http_context"] is None
    assert exported["error"]["cause"] is None


def test_cause_chains_are_kept_in_order(client):
    pushed = occurrence()
    pushed["error"]["cause"] = {
        "class": "IOError",
        "message": "disk",
        "stacktrace": ["a"],
        "cause": {"class": "OSError", "message": "errno 28", "stacktrace": None, "cause": None},
    }
    post(client, push_body(aggregate("k", 1, [pushed])))
    cause = exported_occurrences(client)[0]["error"]["cause"]
    assert cause == {
        "class": "IOError",
        "message": "disk",
        "stacktrace": ["a"],
        "cause": {"class": "OSError", "message": "errno 28", "stacktrace": None, "cause": None},
    }


def test_string_cause_from_old_ruby_clients_is_exported_as_an_object(client):
    pushed = occurrence()
    pushed["error"]["cause"] = "#<RuntimeError: connection reset>"
    post(client, push_body(aggregate("k", 1, [pushed])))
    assert exported_occurrences(client)[0]["error"]["cause"] == {
        "class": None,
        "message": "#<RuntimeError: connection reset>",
        "stacktrace": None,
        "cause": None,
    }


def test_scala_message_only_report_without_class(client):
    pushed = {
        "error": {"message": "cache refreshed"},
        "uuid": str(uuid.uuid4()),
        "timestamp": "2026-01-01T12:00:00.123+01:00",
        "severity": "info",
    }
    post(client, push_body(aggregate("cache refreshed", 1, [pushed], severity="info")))
    [exported] = exported_occurrences(client, "cache refreshed")
    assert exported["error"] == {
        "class": None,
        "message": "cache refreshed",
        "stacktrace": None,
        "cause": None,
    }
    assert exported["timestamp"] == "2026-01-01T11:00:00.123Z"
    assert exported["http_context"] is None


def test_null_message_from_jvm_exceptions_is_kept_null(client):
    pushed = occurrence()
    pushed["error"]["message"] = None
    post(client, push_body(aggregate("k", 1, [pushed])))
    assert exported_occurrences(client)[0]["error"]["message"] is None


def test_go_nil_uuid_and_zero_time_mean_absent(client):
    nil = "00000000-0000-0000-0000-000000000000"
    zero = "0001-01-01T00:00:00Z"
    pushed = [
        occurrence("a", uuid_=nil, timestamp=zero),
        occurrence("b", uuid_=nil, timestamp=zero),
    ]
    post(client, push_body(aggregate("k", 2, pushed), target_uuid="go-process"))
    exported = exported_occurrences(client)
    assert len(exported) == 2  # not merged by de-duplication
    assert nil not in {o["uuid"] for o in exported}
    assert all(o["timestamp"].startswith("20") for o in exported)


def test_missing_uuids_from_a_process_are_stable_across_repushes(client):
    pushed = [{k: v for k, v in occurrence("same").items() if k != "uuid"} for _ in range(2)]
    body = push_body(aggregate("k", 2, pushed), target_uuid="p")
    post(client, body)
    first = scrape(client)
    assert len(first["aggregated_errors"][0]["latest_errors"]) == 2
    assert post(client, body).get_json()["new_occurrences"] == 0
    assert scrape(client) == first


def test_missing_uuids_from_anonymous_pushes_are_each_new(client):
    pushed = {k: v for k, v in occurrence("nightly failure").items() if k not in ("uuid",)}
    for night in range(3):
        post(client, push_body(aggregate("k", 1, [dict(pushed, timestamp=stamp(night))])))
    assert len(exported_occurrences(client)) == 3


def test_non_uuid_identifiers_are_mapped_to_uuids(client):
    post(client, push_body(aggregate("k", 1, [occurrence(uuid_="req-42")]), target_uuid="p"))
    post(client, push_body(aggregate("k", 1, [occurrence(uuid_="req-42")]), target_uuid="p"))
    [exported] = exported_occurrences(client)
    assert str(uuid.UUID(exported["uuid"])) == exported["uuid"]


@pytest.mark.parametrize(
    "value, exported",
    [
        (["a", "b"], "a, b"),
        ([1, "x", None], "1, x, null"),
        (42, "42"),
        (True, "true"),
        (None, ""),
        ({"nested": 1}, '{"nested":1}'),
    ],
)
def test_header_values_are_exported_as_strings(client, value, exported):
    context = {
        "request_method": "GET",
        "request_url": "http://x/",
        "request_headers": {"X-Odd": value, "Accept": "*/*"},
        "request_body": None,
    }
    post(client, push_body(aggregate("k", 1, [occurrence(http_context=context)])))
    headers = exported_occurrences(client)[0]["http_context"]["request_headers"]
    assert headers == {"X-Odd": exported, "Accept": "*/*"}


def test_null_stacktrace_and_headers_from_go_clients(client):
    pushed = occurrence(
        http_context={
            "request_method": "POST",
            "request_url": "http://x",
            "request_headers": None,
            "request_body": "a=1",
        }
    )
    pushed["error"]["stacktrace"] = None
    post(client, push_body(aggregate("k", 1, [pushed])))
    [exported] = exported_occurrences(client)
    assert exported["error"]["stacktrace"] is None
    assert exported["http_context"]["request_headers"] is None
    assert exported["http_context"]["request_body"] == "a=1"


def test_python_and_go_stacktraces_and_unicode_survive_verbatim(client):
    stacktrace = [
        "Traceback (most recent call last):",
        '  File "job.py", line 3, in <module>',
        "    1 / 0",
        "    ~~^^~",
        "ZeroDivisionError: division by zero",
        "main.main()\n\t/src/main.go:12 +0x1d",
        "ünïcödé ✓ \u2028",
    ]
    pushed = occurrence(
        "ünïcödé",
        http_context={
            "request_method": "GET",
            "request_url": "http://x/ä",
            "request_headers": {},
            "request_body": "✓",
        },
    )
    pushed["error"]["stacktrace"] = stacktrace
    post(client, push_body(aggregate("k", 1, [pushed])))
    [exported] = exported_occurrences(client)
    assert exported["error"]["stacktrace"] == stacktrace
    assert exported["error"]["message"] == "ünïcödé"
    assert exported["http_context"]["request_body"] == "✓"


def test_occurrence_without_timestamp_gets_the_receipt_time(client):
    pushed = {k: v for k, v in occurrence().items() if k != "timestamp"}
    post(client, push_body(aggregate("k", 1, [pushed])))
    [exported] = exported_occurrences(client)
    assert exported["timestamp"] >= "2026-"
    assert exported["timestamp"].endswith("Z")
