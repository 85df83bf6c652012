"""docs/protocol.md's counting rules: increases per (group, pushing process, key)."""

from .helpers import aggregate, by_key, counts, occurrence, post, push_body, scrape


def push_count(client, key, total, target_uuid="process-1", group=None, **extra):
    body = push_body(aggregate(key, total, **extra), target_uuid=target_uuid)
    response = post(client, body, group)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_repushing_cumulative_state_does_not_double_count(client):
    for total in (1, 3, 7):
        push_count(client, "ValueError@1", total)
    assert counts(scrape(client)) == {"ValueError@1": 7}


def test_repeated_identical_cumulative_push_adds_nothing(client):
    for _ in range(5):
        push_count(client, "k", 4)
    assert counts(scrape(client)) == {"k": 4}


def test_restarted_process_with_new_uuid_adds_its_whole_count(client):
    push_count(client, "k", 5, target_uuid="run-1")
    push_count(client, "k", 2, target_uuid="run-2")
    push_count(client, "k", 3, target_uuid="run-2")
    assert counts(scrape(client)) == {"k": 8}


def test_a_lower_count_from_the_same_process_adds_nothing_and_lowers_nothing(client):
    """Two threads of one process pushed 6 and 5; the 5 arrived second. Then 6 again."""
    uuid_ = "aaaaaaaa-0000-4000-8000-000000000001"
    increases = [
        push_count(client, "k", total, target_uuid=uuid_, group="repro")["count_increase"]
        for total in (6, 5, 6)
    ]
    assert increases == [6, 0, 0]
    assert counts(scrape(client, "repro")) == {"k": 6}
    assert push_count(client, "k", 8, target_uuid=uuid_, group="repro")["count_increase"] == 2
    assert counts(scrape(client, "repro")) == {"k": 8}


def test_a_push_that_arrived_out_of_order_is_reported_stale(client):
    push_count(client, "a", 3)
    push_count(client, "b", 3)
    summary = push_count(client, "a", 2)
    assert summary["stale_keys"] == 1 and summary["count_increase"] == 0
    both = push_body(
        aggregate("a", 3), aggregate("b", 1), aggregate("c", 1), target_uuid="process-1"
    )
    summary = post(client, both).get_json()
    assert summary["stale_keys"] == 1  # b; a is as high as before, c is new
    assert summary["count_increase"] == 1
    assert counts(scrape(client)) == {"a": 3, "b": 3, "c": 1}


def test_a_stale_push_still_brings_its_new_occurrences(client):
    push_count(client, "k", 2, occurrences=[occurrence("second", timestamp="2026-01-01T00:00:02Z")])
    summary = push_count(
        client, "k", 1, occurrences=[occurrence("first", timestamp="2026-01-01T00:00:01Z")]
    )
    assert summary["new_occurrences"] == 1 and summary["count_increase"] == 0
    exported = by_key(scrape(client))["k"]
    assert exported["total_count"] == 2
    assert [o["error"]["message"] for o in exported["latest_errors"]] == ["first", "second"]


def test_a_stale_push_does_not_change_the_severity(client):
    push_count(client, "k", 2, severity="warning")
    push_count(client, "k", 1, severity="info")
    assert by_key(scrape(client))["k"]["severity"] == "warning"


def test_anonymous_pushes_add_their_count_as_is(client):
    for total in (2, 2, 3):
        post(client, push_body(aggregate("cron", total)))
    assert counts(scrape(client)) == {"cron": 7}


def test_missing_total_count_means_occurrences_in_the_push(client):
    pushed = {"aggregation_key": "k", "latest_errors": [occurrence("a"), occurrence("b")]}
    post(client, push_body(pushed))
    assert counts(scrape(client)) == {"k": 2}


def test_keys_are_kept_verbatim_and_counted_independently(client):
    body = push_body(
        aggregate("ValueError@1a2b3c4d", 2),
        aggregate("testing@test", 1),
        aggregate("ünïcode key/with spaces", 4),
        target_uuid="p",
    )
    post(client, body)
    assert counts(scrape(client)) == {
        "ValueError@1a2b3c4d": 2,
        "testing@test": 1,
        "ünïcode key/with spaces": 4,
    }


def test_counters_are_per_process_and_key(client):
    push_count(client, "a", 3, target_uuid="p1")
    push_count(client, "b", 3, target_uuid="p1")
    push_count(client, "a", 3, target_uuid="p2")
    push_count(client, "a", 4, target_uuid="p1")
    assert counts(scrape(client)) == {"a": 7, "b": 3}


def test_counters_are_per_group(client):
    push_count(client, "k", 3, group="nightly")
    push_count(client, "k", 3, group="hourly")
    push_count(client, "k", 5, group="nightly")
    assert counts(scrape(client, "nightly")) == {"k": 5}
    assert counts(scrape(client, "hourly")) == {"k": 3}


def test_severity_is_the_latest_pushed(client):
    push_count(client, "k", 1, severity="warning")
    assert by_key(scrape(client))["k"]["severity"] == "warning"
    push_count(client, "k", 1, severity="info")
    assert by_key(scrape(client))["k"]["severity"] == "info"
    push_count(client, "k", 2)  # missing means error
    assert by_key(scrape(client))["k"]["severity"] == "error"


def test_go_empty_severity_means_error(client):
    push_count(client, "k", 1, severity="")
    assert by_key(scrape(client))["k"]["severity"] == "error"


def test_created_at_is_the_earliest_pushed(client):
    push_count(client, "k", 1, created_at="2026-03-01T10:00:00Z", target_uuid="p1")
    push_count(client, "k", 1, created_at="2026-02-01T10:00:00+01:00", target_uuid="p2")
    push_count(client, "k", 1, created_at="2026-04-01T10:00:00Z", target_uuid="p3")
    assert by_key(scrape(client))["k"]["created_at"] == "2026-02-01T09:00:00Z"


def test_created_at_defaults_to_the_earliest_occurrence(client):
    push_count(
        client,
        "k",
        2,
        occurrences=[
            occurrence(timestamp="2026-05-02T00:00:00Z"),
            occurrence(timestamp="2026-05-01T00:00:00.5Z"),
        ],
    )
    assert by_key(scrape(client))["k"]["created_at"] == "2026-05-01T00:00:00.5Z"


def test_push_response_reports_what_changed(client):
    first = push_count(client, "k", 2, occurrences=[occurrence("a"), occurrence("b")])
    unchanged = {"new_occurrences": 0, "count_increase": 0, "dropped_keys": 0, "stale_keys": 0}
    assert first == {**unchanged, "aggregates": 1, "new_occurrences": 2, "count_increase": 2}
    second = push_count(client, "k", 2)
    assert second == {**unchanged, "aggregates": 1}


def test_empty_push_is_accepted_and_changes_nothing(client):
    for body in ({}, {"aggregated_errors": None}, {"aggregated_errors": [], "target_uuid": "p"}):
        response = post(client, body)
        assert response.status_code == 200
        assert response.get_json() == {
            "aggregates": 0,
            "new_occurrences": 0,
            "count_increase": 0,
            "dropped_keys": 0,
            "stale_keys": 0,
        }
    assert scrape(client)["aggregated_errors"] == []


def test_counts_saturate_instead_of_overflowing(client):
    """2^53 is the most one push may add per entry; a flood of them must not overflow the
    database's 64-bit integer (a 500) nor ever make the count go down."""
    body = push_body(*(aggregate("k", 2**53) for _ in range(1000)))
    for _ in range(2):
        assert post(client, body).status_code == 200
    assert counts(scrape(client)) == {"k": 2**63 - 1}


def test_a_key_named_twice_in_one_push_counts_as_its_highest_entry_and_stays_idempotent(client):
    body = push_body(aggregate("K@1", 10), aggregate("K@1", 5), target_uuid="p")
    for _ in range(3):
        assert post(client, body).status_code == 200
        assert counts(scrape(client)) == {"K@1": 10}


def test_an_anonymous_push_naming_a_key_twice_adds_both_entries(client):
    post(client, push_body(aggregate("anonymous", 2), aggregate("anonymous", 5)))
    assert counts(scrape(client))["anonymous"] == 7
