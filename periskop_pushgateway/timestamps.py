"""RFC 3339 timestamps as integer nanoseconds since the epoch.

Clients send millisecond (Python, Scala) or nanosecond (Go) precision; Python's
datetime keeps only microseconds, so timestamps are parsed and stored as integers
to export exactly what was pushed.
"""

import re
import time
from datetime import date

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Go marshals an unset time.Time as this instant; it means "no timestamp".
GO_ZERO_TIME_NS = -62135596800 * 10**9


def parse_rfc3339_ns(text):
    """Return nanoseconds since the epoch, or None when text is not RFC 3339."""
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


def format_rfc3339_ns(ns):
    """Format like Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    seconds, nanos = divmod(ns, 10**9)
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    text += f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def now_ns():
    return time.time_ns()
