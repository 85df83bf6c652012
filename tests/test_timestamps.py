import pytest

from periskop_pushgateway.timestamps import format_rfc3339_ns, parse_rfc3339_ns


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
