import re
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from periskop_pushgateway.wire.timestamps import (
    GO_ZERO_TIME_NS,
    _parse_general,
    format_rfc3339_ns,
    parse_rfc3339_ns,
)


@pytest.mark.parametrize(
    "text, ns",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.1Z", 100_000_000),
        ("1970-01-01T00:00:00.000000001Z", 1),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T23:00:00-01:00", 0),
        ("2020-02-17T22:42:45.123z", 1581979365123000000),
    ],
)
def test_parses_rfc3339_with_any_precision_and_offset(text, ns):
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2020-02-17",
        "2020-02-17T22:42:45",
        "2020-02-30T00:00:00Z",
        "2020-13-01T00:00:00Z",
        "2020-02-17T24:00:00Z",
        "2020-02-17T22:42:45.1234567890Z",
        "2020-02-17T22:42:45+0100",
        " 2020-02-17T22:42:45Z",
        "2020-02-17T22:42:45Z\n",
        "0000-01-01T00:00:00Z",
    ],
)
def test_rejects_what_is_not_rfc3339(text):
    assert parse_rfc3339_ns(text) is None


@pytest.mark.parametrize(
    "ns, text",
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (1581979365123000000, "2020-02-17T22:42:45.123Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_formats_like_go_rfc3339nano_in_utc(ns, text):
    assert format_rfc3339_ns(ns) == text


# The fast path (datetime's C parser, for UTC) and the general one must agree on every text.
_DIGITS = st.text("0123456789", min_size=1, max_size=10)


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.one_of(st.just(""), _DIGITS.map(lambda digits: "." + digits)),
    st.sampled_from(["T", "t", " ", "x"]),
    st.sampled_from(["Z", "z", "+00:00", "-01:30", ""]),
    st.booleans(),
)
def test_the_fast_path_reads_as_the_general_one(moment, fraction, separator, zone, leap):
    text = moment.strftime("%Y-%m-%d") + separator + moment.strftime("%H:%M:")
    text += ("60" if leap else moment.strftime("%S")) + fraction + zone
    assert parse_rfc3339_ns(text) == _parse_general(text)


@given(st.integers(min_value=GO_ZERO_TIME_NS, max_value=253402300799 * 10**9))
def test_formatting_reads_back_the_same_instant(ns):
    text = format_rfc3339_ns(ns)
    assert parse_rfc3339_ns(text) == _parse_general(text) == ns
    assert not re.search(r"\.\d*0Z$", text)  # no trailing zeros, as Go writes it
