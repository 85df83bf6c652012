"""A body pushed again is recognized without loading it anew (push_cache.py), and counted as
loading it anew would count it."""

import json
import tracemalloc

from periskop_pushgateway.services.push_cache import PushCache

from .helpers import aggregate, counts, occurrence, post, push_body, scrape


def identified(name):
    return {"target_uuid": name, "aggregates": []}


def accept(recent, key, push):
    """Accepted twice: kept from the second time on."""
    for _ in range(2):
        recent.add(key, push)


def body(character, size):
    return character.encode() * size


def test_recent_pushes_keep_the_last_bodies_per_group_within_their_bounds():
    recent = PushCache(max_entries=2, max_body_bytes=100)
    first, second, third = (PushCache.key("", body(c, 10)) for c in "123")
    accept(recent, first, identified("a"))
    accept(recent, second, identified("b"))
    assert recent.get(first).push["target_uuid"] == "a"
    assert recent.get(PushCache.key("batch", body("1", 10))) is None  # other group
    # Found by its bytes, not by the bytes object it came in.
    assert recent.get(PushCache.key("", bytes(bytearray(body("1", 10))))) is not None
    recent.add(first, identified("a"))  # accepted again: now the most recent
    accept(recent, third, identified("c"))
    assert recent.get(second) is None
    assert recent.get(first) and recent.get(third)

    larger = PushCache.key("", body("2", 95))
    accept(recent, larger, identified("b"))  # past the bytes: the least recent go
    assert recent.get(larger) and not recent.get(first) and not recent.get(third)
    too_large = PushCache.key("", body("1", 101))
    accept(recent, too_large, identified("a"))  # larger than all of it: not kept
    assert recent.get(too_large) is None and recent.get(larger)


def test_a_body_accepted_once_is_noted_and_kept_from_its_second_acceptance():
    recent = PushCache(max_entries=3, max_body_bytes=100)
    once, twice = PushCache.key("", body("o", 60)), PushCache.key("", body("t", 60))
    recent.add(twice, identified("t"))
    recent.add(once, identified("o"))
    assert recent.get(once) is None and recent.get(twice) is None
    recent.add(twice, identified("t"))
    assert recent.get(twice).push["target_uuid"] == "t"
    # A note counts no body bytes: the kept body's 60 and the note leave room for more notes,
    # which take entries alone.
    recent.add(PushCache.key("", body("3", 60)), identified("3"))
    assert recent.get(twice)
    recent.add(PushCache.key("", body("4", 60)), identified("4"))  # the oldest note goes
    assert recent.get(twice)
    recent.add(twice, identified("t"))  # accepted again: the most recent
    recent.add(once, identified("o"))  # noted anew, not kept: its note was dropped
    assert recent.get(once) is None and recent.get(twice)
    # Kept now: 120 bytes with "twice", so the least recent go until they fit, notes first.
    recent.add(once, identified("o"))
    assert recent.get(once).push["target_uuid"] == "o" and recent.get(twice) is None
    assert len(recent) == 1


def test_another_body_of_the_same_size_is_noted_apart():
    recent = PushCache()
    one, other = PushCache.key("", b'{"a":1}'), PushCache.key("", b'{"a":2}')
    recent.add(one, identified("p"))
    recent.add(other, identified("p"))
    assert recent.get(one) is None and recent.get(other) is None
    recent.add(one, identified("p"))
    assert recent.get(one) and recent.get(other) is None


def test_anonymous_pushes_are_not_kept():
    recent = PushCache()
    key = PushCache.key("", b"{}")
    accept(recent, key, {"target_uuid": None, "aggregates": []})
    assert recent.get(key) is None


def test_a_worker_remembers_the_identified_bodies_it_accepted(app):
    client = app.test_client()
    recent = app.extensions["periskop_pushgateway"].push_cache
    identified_body = json.dumps(push_body(aggregate("k", 1, [occurrence("x")]), target_uuid="p"))
    anonymous_body = json.dumps(push_body(aggregate("k", 1, [occurrence("x")])))
    rejected_body = json.dumps(push_body(aggregate("", 1), target_uuid="p"))
    for body in (identified_body, anonymous_body, rejected_body):
        post(client, body, group="batch")
    assert recent.get(PushCache.key("batch", identified_body.encode())) is None  # noted
    for body in (identified_body, anonymous_body, rejected_body):
        post(client, body, group="batch")

    remembered = recent.get(PushCache.key("batch", identified_body.encode())).push
    assert remembered["target_uuid"] == "p"
    # What it loaded to, but for the occurrences' exported text: only a write needs that.
    [[stored]] = [a["occurrences"] for a in remembered["aggregates"]]
    assert stored.keys() == {"uuid", "timestamp_ns"}
    assert recent.get(PushCache.key("", identified_body.encode())) is None
    assert recent.get(PushCache.key("batch", anonymous_body.encode())) is None
    assert recent.get(PushCache.key("batch", rejected_body.encode())) is None
    # Found there, the body is not loaded again, and it counts as it did.
    assert post(client, identified_body, group="batch").get_json()["count_increase"] == 0
    assert counts(scrape(client, group="batch")) == {"k": 3}


def test_the_same_anonymous_body_twice_is_two_failures_with_two_occurrences(client):
    # Its occurrence has no uuid: each push of it is a new one, not a repeat to recognize.
    body = push_body(aggregate("nightly", 1, [{"error": {"class": "E", "message": "m"}}]))
    for _ in range(2):
        assert post(client, body).status_code == 200
    [exported] = scrape(client)["aggregated_errors"]
    assert exported["total_count"] == 2
    assert len({o["uuid"] for o in exported["latest_errors"]}) == 2


def test_a_body_pushed_again_is_counted_as_loading_it_anew_would(client):
    body = push_body(aggregate("k", 3, [occurrence("boom")]), target_uuid="p")
    assert post(client, body).get_json()["count_increase"] == 3
    # Resolved in between: the same body again changes nothing, as docs/protocol.md says.
    assert client.delete("/-/errors/k").status_code == 200
    assert post(client, body).get_json() == {
        "aggregates": 1,
        "new_occurrences": 0,
        "count_increase": 0,
        "dropped_keys": 0,
        "stale_keys": 0,
    }
    assert counts(scrape(client)) == {}
    # After a wipe the group starts afresh: the same body is new there, and stored again.
    assert client.delete("/-/errors").status_code == 200
    assert post(client, body).get_json()["count_increase"] == 3
    assert counts(scrape(client)) == {"k": 3}
    # Stored whole: the body was loaded again for the write.
    [exported] = scrape(client)["aggregated_errors"]
    assert [o["error"]["message"] for o in exported["latest_errors"]] == ["boom"]


def test_a_body_pushed_again_with_a_key_past_the_cap_stores_it_once_there_is_room(make_app):
    client = make_app(MAX_KEYS_PER_GROUP=1).test_client()
    body = push_body(
        aggregate("a", 1, [occurrence("x")]), aggregate("b", 2, [occurrence("y")]), target_uuid="p"
    )
    summary = {
        "aggregates": 1,
        "new_occurrences": 1,
        "count_increase": 1,
        "dropped_keys": 1,
        "stale_keys": 0,
    }
    assert post(client, body, group="g").get_json() == summary
    summary = {**summary, "new_occurrences": 0, "count_increase": 0}
    assert post(client, body, group="g").get_json() == summary
    assert counts(scrape(client, group="g")) == {"a": 1}

    # Resolving "a" makes room: the same body now stores "b", and leaves "a" resolved.
    assert client.delete("/services/g/-/errors/a").status_code == 200
    summary = {
        "aggregates": 2,
        "new_occurrences": 1,
        "count_increase": 2,
        "dropped_keys": 0,
        "stale_keys": 0,
    }
    assert post(client, body, group="g").get_json() == summary
    summary = {**summary, "new_occurrences": 0, "count_increase": 0}
    assert post(client, body, group="g").get_json() == summary
    assert counts(scrape(client, group="g")) == {"b": 2}


def test_a_body_pushed_again_is_answered_for_its_own_keys_alone(client):
    post(client, push_body(aggregate("other", 1, [occurrence("o")]), target_uuid="q"))
    body = push_body(aggregate("k", 1, [occurrence("x")]), target_uuid="p")
    first = {
        "aggregates": 1,
        "new_occurrences": 1,
        "count_increase": 1,
        "dropped_keys": 0,
        "stale_keys": 0,
    }
    assert post(client, body).get_json() == first
    assert post(client, body).get_json() == {**first, "new_occurrences": 0, "count_increase": 0}
    assert counts(scrape(client)) == {"other": 1, "k": 1}


def test_a_body_pushed_again_that_changes_something_is_read_once_before_its_write(app):
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    body = push_body(aggregate("k", 3, [occurrence("boom")]), target_uuid="p")
    post(client, body)
    assert client.delete("/-/errors").status_code == 200  # the same body is new again
    reads = []
    read_snapshot = store.read_snapshot
    store.read_snapshot = lambda read, **options: (
        reads.append(read) or read_snapshot(read, **options)
    )
    assert post(client, body).get_json()["count_increase"] == 3
    # Its counts are the ones this worker saw already, but the read that found the body
    # changes something is not made a second time.
    assert len(reads) == 1


def one_key_push(process, count=1):
    return {"target_uuid": process, "aggregates": [{"aggregation_key": "k", "total_count": count}]}


def test_counts_are_remembered_per_key_the_least_recently_pushed_forgotten_first():
    recent = PushCache(max_counted_keys=100)
    for process in range(150):
        recent.note_counts("g", one_key_push(f"p{process}", count=5))
    recent.note_counts("g", one_key_push("p60", count=7))  # pushed again: the most recent now
    for process in range(51):  # makes room for 51 more: p50 to p59 and p61 to p101 go
        recent.note_counts("g", one_key_push(f"q{process}"))
    assert len(recent._highest) == 100
    assert recent.counts_seen_already("g", one_key_push("p60", count=7))
    assert not recent.counts_seen_already("g", one_key_push("p60", count=8))
    assert not recent.counts_seen_already("g", one_key_push("p101", count=1))
    assert recent.counts_seen_already("g", one_key_push("p102", count=5))
    assert not recent.counts_seen_already("other group", one_key_push("p102", count=5))


def test_the_counts_remembered_take_1_mib_at_most_whatever_the_keys_per_process():
    recent = PushCache()
    tracemalloc.start()
    try:
        # The worst case: a new process each, of one key (a batch job's push).
        for process in range(2 * recent.max_counted_keys):
            recent.note_counts("g", one_key_push(f"batch-job-{process:032}"))
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 2**20  # 0.7 MiB measured; 2.1 when they were kept per process
