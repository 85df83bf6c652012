"""An occurrence is rendered (scrubbed, fitted, turned into its exported JSON) only when it is
to be stored: a client re-pushing its cumulative state sends mostly occurrences that are."""

import orjson

from periskop_pushgateway.wire.body import parse_push_document

from .helpers import aggregate, occurrence, post, push_body, scrape

SECRET_URL = "http://shop.example/pay?token=s3cret"


def loaded(gateway, body):
    return gateway.load_push(parse_push_document(orjson.dumps(body)))


def test_occurrences_already_stored_are_not_rendered_again(app):
    gateway = app.extensions["periskop_pushgateway"]
    stored = occurrence("first", http_context={"request_url": SECRET_URL})
    first = post(app.test_client(), push_body(aggregate("k", 1, [stored]), target_uuid="a"))
    assert first.status_code == 200

    new = occurrence("second", timestamp="2026-01-02T00:00:00Z")
    push = loaded(gateway, push_body(aggregate("k", 2, [stored, new]), target_uuid="b"))
    summary = gateway.store.ingest("", push)

    assert summary.new_occurrences == 1
    known, fresh = push["aggregates"][0]["occurrences"]
    assert "pending" in known and "body" not in known
    assert "pending" not in fresh and orjson.loads(fresh["body"])["uuid"] == new["uuid"]
    assert fresh["body_bytes"] == len(fresh["body"].encode())


def test_an_occurrence_rendered_late_is_scrubbed_and_counted_in_the_group_bytes(app):
    client = app.test_client()
    pushed = occurrence("first", http_context={"request_url": SECRET_URL})
    assert post(client, push_body(aggregate("k", 1, [pushed]), target_uuid="a")).status_code == 200

    [exported] = scrape(client)["aggregated_errors"][0]["latest_errors"]
    assert exported["http_context"]["request_url"] == "http://shop.example/pay?token=[Filtered]"
    store = app.extensions["periskop_pushgateway"].store
    with store.engine.connect() as connection:
        group_bytes = connection.exec_driver_sql("SELECT occurrence_bytes FROM groups").scalar()
    assert group_bytes == len(orjson.dumps(exported))
