"""RFC 3339 timestamps as integer nanoseconds since the epoch.

Clients send millisecond (Python, Scala) or nanosecond (Go) precision; Python's
datetime keeps only microseconds, so timestamps are parsed and stored as integers
to export exactly what was pushed.
"""

import re
import time
from datetime import date, datetime, timedelta

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)

# Go marshals an unset time.Time as this instant; it means "no timestamp".
GO_ZERO_TIME_NS = -62135596800 * 10**9


def parse_rfc3339_ns(text: str) -> int | None:
    """Return nanoseconds since the epoch, or None when text is not RFC 3339."""
    # What clients send (UTC, "Z") is read by datetime's C parser, about three times as
    # fast; anything else (an offset, a leap second) by the general path.
    if (
        len(text) >= 20
        and text[-1] in "Zz"
        and text[4] == "-"
        and text[7] == "-"
        and text[10] in "Tt "
        and text[13] == ":"
        and text[16] == ":"
        and text.isascii()
    ):
        fraction = text[20:-1]
        if (text[19] == "." and 0 < len(fraction) <= 9 and fraction.isdigit()) or len(text) == 20:
            try:
                utc = datetime.fromisoformat(text[:19])
            except ValueError:
                return _parse_general(text)
            return (utc - _EPOCH) // _SECOND * 10**9 + (
                int(fraction.ljust(9, "0")) if fraction else 0
            )
    return _parse_general(text)


def _parse_general(text: str) -> int | None:
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _z, sign, offset_hours, offset_minutes = (
        match.groups()
    )
    try:
        # date() checks the calendar (month lengths, leap years) in C.
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 60:
        return None
    second = min(second, 59)  # a leap second is kept as the second before it
    offset = 0
    if sign:
        offset_hours, offset_minutes = int(offset_hours), int(offset_minutes)
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (offset_hours * 60 + offset_minutes) * 60
        if sign == "-":
            offset = -offset
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 10**9 + (int(fraction.ljust(9, "0")) if fraction else 0)


def format_rfc3339_ns(ns: int) -> str:
    """Format like Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(ns, 10**9)
    text = (_EPOCH + timedelta(seconds=seconds)).isoformat()
    if nanos:
        return f"{text}.{nanos:09d}".rstrip("0") + "Z"
    return text + "Z"


def now_ns() -> int:
    return time.time_ns()
