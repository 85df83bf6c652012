"""Payment card numbers masked wherever a client may have captured one in free text."""

import re

from stdnum import luhn

# 13 to 19 digits, run together or in the groups cards are printed in (4-4-4-4 and up to
# 4-4-4-7, or American Express's 4-6-5), spaced or dashed alike; not part of a longer number.
# Card numbers begin with 2 to 6 (ISO/IEC 7812: Mastercard's 2-series, American Express, JCB
# and Diners 3, Visa 4, Mastercard 5, Discover, UnionPay and Maestro 6), which leaves out
# nanosecond timestamps (17…) and many ids of that length; the Luhn check leaves out 9 in 10
# of the rest. Beginning with that digit, not a look-behind, lets the scan skip to candidates
# (six times faster on text with few digits).
_CANDIDATE = re.compile(
    r"[2-6](?<!\d[2-6])"
    r"(?:\d{12,18}"
    r"|\d{3}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,7}"
    r"|\d{3}(?P<amex>[ -])\d{6}(?P=amex)\d{5})"
    r"(?!\d)"
)


def _mask(match: re.Match[str], replacement: str) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return replacement if luhn.is_valid(digits) else match.group()


def mask_card_numbers(text: str | None, replacement: str) -> str | None:
    """text with every number that looks like a payment card replaced."""
    if text is None or _CANDIDATE.search(text) is None:
        return text
    return _CANDIDATE.sub(lambda match: _mask(match, replacement), text)
