"""MAX_OCCURRENCE_BYTES: one stored occurrence is at most that many bytes of JSON, cut whole
fields first (request body, headers, causes, the middle of the stack trace), then its longest
texts, each with a visible marker."""

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from periskop_pushgateway.config import load_config
from periskop_pushgateway.wire.fitting import CUT_BY, MIN_OCCURRENCE_BYTES, fitted_occurrence

from .helpers import aggregate, occurrence, post, push_body, scrape

LIMIT = 8192
UUID = "6f1c3a8e-3b7d-4c1e-9a2f-2b8e6d4c1a90"


def stored(app_client, *occurrences):
    response = post(app_client, push_body(aggregate("K", 1, occurrences), target_uuid="p"))
    assert response.status_code == 200, response.data
    [exported] = scrape(app_client)["aggregated_errors"]
    return exported["latest_errors"]


@pytest.fixture
def bounded(make_app):
    return make_app(MAX_OCCURRENCE_BYTES=LIMIT).test_client()


def exported_size(item):
    return len(orjson.dumps(item))


def test_an_occurrence_within_the_bound_is_stored_whole(bounded):
    pushed = occurrence("x" * 1000, http_context=_context(body="b" * 3000))
    [kept] = stored(bounded, pushed)
    assert kept["error"]["message"] == "x" * 1000
    assert kept["http_context"]["request_body"] == "b" * 3000


def test_the_request_body_goes_first_and_the_rest_stays_whole(bounded):
    pushed = occurrence("boom", http_context=_context(body="b" * 60_000))
    [kept] = stored(bounded, pushed)
    assert exported_size(kept) <= LIMIT
    assert kept["http_context"]["request_body"] == f"[60000 characters cut by {CUT_BY}]"
    assert kept["http_context"]["request_headers"] == {"Accept": "*/*"}
    assert kept["error"] == pushed["error"]


def test_then_the_headers_then_the_causes(bounded):
    headers = {f"X-Header-{n}": "h" * 100 for n in range(100)}
    cause = {"class": "IOError", "message": "c" * 5000, "stacktrace": ["frame"], "cause": None}
    pushed = occurrence("boom", http_context=_context(body="b" * 100, headers=headers))
    pushed["error"]["cause"] = {**cause, "cause": dict(cause)}
    [kept] = stored(bounded, pushed)
    assert exported_size(kept) <= LIMIT
    assert kept["http_context"]["request_headers"] == {"…": f"[100 headers cut by {CUT_BY}]"}
    assert kept["error"]["cause"]["message"] == f"[2 causes cut by {CUT_BY}]"
    assert kept["error"]["stacktrace"] == pushed["error"]["stacktrace"]
    assert kept["http_context"]["request_url"] == "https://example.test/orders"


def test_a_long_stack_trace_loses_its_middle_and_keeps_both_ends(bounded):
    pushed = occurrence("boom")
    pushed["error"]["stacktrace"] = [f"frame {n} " + "f" * 200 for n in range(1000)]
    [kept] = stored(bounded, pushed)
    assert exported_size(kept) <= LIMIT
    lines = kept["error"]["stacktrace"]
    assert lines[0] == pushed["error"]["stacktrace"][0]
    assert lines[-1] == pushed["error"]["stacktrace"][-1]
    [marker] = [line for line in lines if CUT_BY in line]
    assert marker == f"… [{1000 - len(lines) + 1} lines cut by {CUT_BY}]"
    assert len(lines) > 20  # only what had to go went


@pytest.mark.parametrize("character", ["a", "\u0001", "日", "😀"])
def test_a_message_is_cut_by_its_bytes_whatever_its_characters(make_app, character):
    # MAX_TEXT_LENGTH counts characters: 65,536 control characters are 393 KB of JSON.
    app_client = make_app().test_client()
    pushed = occurrence(character * 65536)
    [kept] = stored(app_client, pushed)
    assert exported_size(kept) <= 65536
    message = kept["error"]["message"]
    assert message.startswith(character * 100)
    assert message.endswith(f"more characters cut by {CUT_BY}]")


def test_the_export_holds_each_occurrence_within_the_bound(bounded):
    # Ten occurrences of 64 KiB texts, each cut to the bound, not one of them lost.
    pushed = [
        occurrence(f"{n}" + "m" * 65535, http_context=_context(body="b" * 65536)) for n in range(10)
    ]
    kept = stored(bounded, *pushed)
    assert len(kept) == 10
    assert all(exported_size(item) <= LIMIT for item in kept)


def test_a_cut_occurrence_pushed_again_is_stored_once(bounded):
    pushed = occurrence("m" * 65536, uuid_=None)
    del pushed["uuid"]  # the gateway derives it from what was pushed, before the cut
    body = push_body(aggregate("K", 1, [pushed]), target_uuid="p")
    for _ in range(3):
        assert post(bounded, body).status_code == 200
    [exported] = scrape(bounded)["aggregated_errors"]
    assert len(exported["latest_errors"]) == 1


def test_a_bound_too_small_for_the_fixed_fields_is_refused_at_start():
    with pytest.raises(ValueError, match="MAX_OCCURRENCE_BYTES: expected at least 4096"):
        load_config({"PERISKOP_PUSHGATEWAY_MAX_OCCURRENCE_BYTES": "4095"})


texts = st.text(max_size=3000)
errors = st.recursive(
    st.fixed_dictionaries(
        {
            "class": st.none() | texts,
            "message": st.none() | texts,
            "stacktrace": st.none() | st.lists(texts, max_size=40),
            "cause": st.none(),
        }
    ),
    lambda inner: st.fixed_dictionaries(
        {
            "class": st.none() | texts,
            "message": st.none() | texts,
            "stacktrace": st.none() | st.lists(texts, max_size=40),
            "cause": inner,
        }
    ),
    max_leaves=6,
)
contexts = st.none() | st.fixed_dictionaries(
    {
        "request_method": st.none() | texts,
        "request_url": st.none() | texts,
        "request_headers": st.none() | st.dictionaries(texts, texts, max_size=20),
        "request_body": st.none() | texts,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(error=errors, http_context=contexts)
def test_any_occurrence_fits_and_one_that_fits_is_untouched(error, http_context):
    original = orjson.dumps([error, http_context])
    body = fitted_occurrence(error, UUID, 0, "error", http_context, MIN_OCCURRENCE_BYTES)
    assert len(body) <= MIN_OCCURRENCE_BYTES
    assert orjson.dumps([error, http_context]) == original  # the input is not changed
    whole = orjson.loads(fitted_occurrence(error, UUID, 0, "error", http_context, 10**9))
    kept = orjson.loads(body)
    if kept != whole:
        assert CUT_BY in body.decode()
    assert kept["uuid"] == UUID and kept["severity"] == "error"


def _context(body=None, headers=None):
    return {
        "request_method": "POST",
        "request_url": "https://example.test/orders",
        "request_headers": headers if headers is not None else {"Accept": "*/*"},
        "request_body": body,
    }
