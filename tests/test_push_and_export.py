"""The seed README's example, the endpoints' shapes, and what clients send them."""

import json

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape


def test_seed_example_push_is_exported_as_pushed(client, seed_push):
    response = post(client, seed_push)
    assert response.status_code == 200
    assert response.get_json() == {
        "aggregates": 1,
        "new_occurrences": 1,
        "count_increase": 1,
        "dropped_keys": 0,
        "stale_keys": 0,
    }

    export = scrape(client)
    [exported] = export["aggregated_errors"]
    pushed = seed_push["aggregated_errors"][0]
    assert exported["aggregation_key"] == "test"
    assert exported["total_count"] == 1
    assert exported["severity"] == "error"
    assert exported["created_at"] == "2020-02-17T22:42:45Z"
    assert exported["latest_errors"] == pushed["latest_errors"]
    # The gateway is its own target: never the pushing client's uuid.
    assert export["target_uuid"] != seed_push["target_uuid"]


def test_repeating_the_seed_push_changes_nothing(client, seed_push):
    post(client, seed_push)
    first = scrape(client)
    response = post(client, seed_push)
    assert response.status_code == 200
    assert response.get_json() == {
        "aggregates": 1,
        "new_occurrences": 0,
        "count_increase": 0,
        "dropped_keys": 0,
        "stale_keys": 0,
    }
    assert scrape(client) == first


def test_export_answers_with_and_without_trailing_slash(client, seed_push):
    post(client, seed_push)
    with_slash = client.get("/-/errors/")
    without = client.get("/-/errors")
    assert with_slash.status_code == without.status_code == 200
    assert with_slash.data == without.data
    assert with_slash.headers["Content-Type"] == "application/json"


def test_push_is_accepted_under_any_content_type(client):
    body = json.dumps(push_body(aggregate("k", 1, [occurrence()]), target_uuid="c1"))
    for headers in (
        {},
        {"Content-Type": "application/json"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "text/plain; charset=utf-8"},
    ):
        assert client.post("/errors", data=body, headers=headers).status_code == 200
    assert scrape(client)["aggregated_errors"][0]["total_count"] == 1


def test_export_of_an_empty_gateway_is_a_valid_empty_export(client):
    export = scrape(client)
    assert export["aggregated_errors"] == []
    assert len(export["target_uuid"]) == 36
    assert scrape(client) == export


def test_unknown_fields_are_ignored(client):
    pushed = occurrence(extra_field={"nested": [1, 2]})
    pushed["error"]["frames"] = [{"file": "x.py"}]
    body = push_body(aggregate("k", 1, [pushed], owner="team-a"), target_uuid="c1")
    body["client_version"] = "9.9"
    assert post(client, body).status_code == 200
    [exported] = by_key(scrape(client))["k"]["latest_errors"]
    assert "extra_field" not in exported
    assert set(exported["error"]) == {"class", "message", "stacktrace", "cause"}


def test_malformed_json_is_a_400_with_a_json_error(client):
    post(client, push_body(aggregate("k", 1)), group="g")
    before = client.get("/services/g/-/errors").data
    response = client.post("/services/g/errors", data="{not json")
    assert response.status_code == 400
    assert response.get_json()["message"] == "invalid push"
    assert "_body" in response.get_json()["errors"]
    assert client.get("/services/g/-/errors").data == before


def test_wrong_types_are_rejected_with_their_field_path(client):
    body = push_body(aggregate("k", 1, [occurrence(), occurrence(timestamp="yesterday")]))
    response = post(client, body, group="g")
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "aggregated_errors.0.latest_errors.1.timestamp": ["Not a valid RFC 3339 datetime."]
    }
    assert scrape(client, "g")["aggregated_errors"] == []


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/nope").get_json()["code"] == 404
    response = client.get("/errors")
    assert response.status_code == 405
    assert response.get_json()["code"] == 405


def test_health_is_ok_while_the_database_answers(client):
    response = client.get("/-/health")
    assert response.status_code == 200
    assert response.data == b"OK"
