"""An occurrence pushed again is not loaded again (occurrence_cache.py), and gives exactly what
loading it anew would give."""

import copy

import orjson
import pytest
from marshmallow import ValidationError

from periskop_pushgateway.config import load_config
from periskop_pushgateway.wire.normalize import render
from periskop_pushgateway.wire.occurrence_cache import OccurrenceCache
from periskop_pushgateway.wire.schemas import Limits, build_push_loader
from periskop_pushgateway.wire.scrub.scrubber import Scrubber

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape


class CountingLoad:
    def __init__(self):
        self.calls = 0

    def __call__(self, data):
        self.calls += 1
        if data.get("bad"):
            raise ValidationError("bad")
        return {"loaded": data["n"]}


def test_an_equal_pushed_form_is_loaded_twice_then_remembered():
    recent, load = OccurrenceCache(), CountingLoad()
    recent.load({"n": 1}, load)
    second = recent.load({"n": 1}, load)
    assert load.calls == 2
    assert recent.load({"n": 1}, load) is second
    assert load.calls == 2
    recent.load({"n": 2}, load)
    assert load.calls == 3


@pytest.mark.parametrize("other", [True, 1.0, "1", [1]])
def test_values_python_takes_for_equal_are_loaded_apart(other):
    recent, load = OccurrenceCache(), CountingLoad()
    assert {"n": 1} == {"n": True}  # why the key is the pushed form, not the parsed dict
    recent.load({"n": 1}, load)
    assert recent.load({"n": other}, load) == {"loaded": other}
    assert load.calls == 2


def test_what_fails_to_load_is_not_kept():
    recent, load = OccurrenceCache(), CountingLoad()
    for _ in range(2):
        with pytest.raises(ValidationError):
            recent.load({"n": 1, "bad": True}, load)
    assert load.calls == 2 and len(recent) == 0


def test_what_is_nested_too_deep_to_write_back_is_loaded_and_not_kept():
    recent, load = OccurrenceCache(), CountingLoad()
    deep = {"n": 1}
    for _ in range(300):  # a cause chain beyond orjson's depth
        deep = {"n": 1, "cause": deep}
    for _ in range(2):
        assert recent.load(deep, load) == {"loaded": 1}
    assert load.calls == 2 and len(recent) == 0


def test_the_oldest_are_dropped_past_the_entries_or_the_bytes():
    recent, load = OccurrenceCache(max_entries=2, max_bytes=40), CountingLoad()
    for n in (1, 2, 3):
        recent.load({"n": n}, load)
    assert len(recent) == 2
    recent.load({"n": 1}, load)  # dropped: loaded again
    assert load.calls == 4
    recent.load({"n": "x" * 30}, load)  # 40 bytes of pushed forms at most: all else goes
    assert len(recent) == 1
    recent.load({"n": "x" * 40}, load)  # larger than all of it: loaded, not kept
    assert len(recent) == 1 and load.calls == 6


def push_loader():
    config = load_config({})
    recent = OccurrenceCache()
    return build_push_loader(
        Limits.from_config(config), Scrubber.from_config(config), recent
    ), recent


def occurrences_of(push):
    return [o for a in push["aggregates"] for o in a["occurrences"]]


def test_a_loaded_occurrence_is_shared_by_the_pushes_that_repeat_it_and_never_changed():
    load_push, recent = push_loader()
    secret = occurrence(
        "card 4111 1111 1111 1111",
        http_context={
            "request_method": "POST",
            "request_url": "http://app/login?password=hunter2",
            "request_headers": {"Authorization": "Bearer secret", "X-Count": 1},
            "request_body": None,
        },
    )
    document = push_body(aggregate("k", 1, [secret]), target_uuid="p")
    load_push(orjson.loads(orjson.dumps(document)))  # seen once: noted
    [first] = occurrences_of(load_push(orjson.loads(orjson.dumps(document))))
    [again] = occurrences_of(load_push(orjson.loads(orjson.dumps(document))))
    assert len(recent) == 1
    loaded = first["pending"][0]
    assert again["pending"][0] is loaded
    untouched = copy.deepcopy(loaded)
    rendered = orjson.loads(render(first)["body"])
    # Scrubbed in what is stored, and the shared occurrence as it was loaded.
    assert rendered["http_context"]["request_headers"]["Authorization"] == "[Filtered]"
    assert "hunter2" not in rendered["http_context"]["request_url"]
    assert "4111" not in rendered["error"]["message"]
    assert loaded == untouched
    assert loaded["http_context"]["request_headers"]["Authorization"] == "Bearer secret"
    assert orjson.loads(render(again)["body"]) == rendered


def test_a_header_value_pushed_as_true_after_1_is_exported_as_pushed(client):
    context = {"request_method": "GET", "request_url": "http://app/", "request_body": None}
    uuid_ = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    for group, value in (("a", 1), ("b", True)):
        # The same occurrence, to another group, but for the header's JSON type.
        context["request_headers"] = {"X-Flag": value}
        sent = occurrence(uuid_=uuid_, http_context=context)
        assert post(client, push_body(aggregate("k", 1, [sent])), group=group).status_code == 200
    exported = {
        group: by_key(scrape(client, group))["k"]["latest_errors"][0]["http_context"]
        for group in ("a", "b")
    }
    assert exported["a"]["request_headers"] == {"X-Flag": "1"}
    assert exported["b"]["request_headers"] == {"X-Flag": "true"}


def test_an_error_storm_counts_and_keeps_occurrences_as_if_each_push_were_loaded_anew(client):
    # A web app pushing its cumulative state after every error: each push repeats the
    # previous occurrences and adds one.
    pushed = []
    for n in range(1, 16):
        pushed.append(occurrence(f"boom {n}", timestamp=f"2026-01-01T00:00:{n:02d}Z"))
        body = push_body(aggregate("k", n, pushed[-10:]), target_uuid="web-1")
        assert post(client, body).get_json()["new_occurrences"] == 1
    [kept] = scrape(client)["aggregated_errors"]
    assert kept["total_count"] == 15
    assert [o["error"]["message"] for o in kept["latest_errors"]] == [
        f"boom {n}" for n in range(6, 16)
    ]
