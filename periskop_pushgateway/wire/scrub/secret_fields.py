"""Values of fields whose names look secret, in a URL's query string (and fragment, and its
user info) and in a JSON or form-encoded request body, as Sentry scrubs them by default."""

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

# Sentry's server-side default: a field is secret when its name contains one of these,
# compared case-insensitively ("-" and "_" alike here, so X-Api-Key is api_key too).
DEFAULT_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "credentials",
    "mysql_pwd",
    "privatekey",
    "private_key",
    "bearer",
    "session",
    "card[number]",
)
# Names Sentry's SDKs match whole (session cookies and CSRF tokens the substrings miss).
DEFAULT_SECRET_NAMES = ("csrf", "_csrf", "xsrf", "_xsrf", "phpsessid", "connect.sid", "sid")

# A form-encoded body: no white space, at least one name=value.
_FORM = re.compile(r"[^\s=]*=\S*")
# "name": value in JSON that does not parse (a body a client cut, or the gateway's limit
# did): a string, complete or not, or a scalar.
_JSON_MEMBER = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"?|[^\s,}\]]+)')
# Lets a user info password through that holds neither "/" nor "@".
_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):([^/?#@]*)@")


def _folded(name: str) -> str:
    """Names compare case-insensitively, with "-" and "_" alike."""
    return name.lower().replace("-", "_")


class SecretFields:
    def __init__(self, substrings: Iterable[str], names: Iterable[str], replacement: str) -> None:
        self.replacement = replacement
        self._names = frozenset(_folded(name) for name in names)
        # Substring tests (str's own search) rather than one regular expression of them all:
        # a case-insensitive alternation cost 20 times as much on a body holding none.
        self._substrings = tuple(dict.fromkeys(_folded(name) for name in substrings))
        # Whether a text mentions any secret name at all: most do not, and are left alone
        # without being parsed.
        self._mentioned = (*self._substrings, *self._names)

    def is_secret(self, name: str) -> bool:
        folded = _folded(name)
        return folded in self._names or any(part in folded for part in self._substrings)

    def _mentions(self, text: str) -> bool:
        folded = _folded(text)
        return any(name in folded for name in self._mentioned)

    def scrub_url(self, url: str | None) -> str | None:
        if url is None:
            return None
        if "@" in url:
            url = _USER_INFO.sub(rf"\1:{self.replacement}@", url)
        if not self._mentions(url):
            return url
        # Query string and fragment (OAuth's implicit flow puts access_token there).
        before_fragment, hash_sign, fragment = url.partition("#")
        path, question_mark, query = before_fragment.partition("?")
        return (
            path
            + question_mark
            + self.scrub_pairs(query)
            + hash_sign
            + (self.scrub_pairs(fragment) if "=" in fragment else fragment)
        )

    def scrub_pairs(self, text: str) -> str:
        """name=value&… with the values of secret names replaced, the rest as it was."""
        parts = text.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, equals, value = part.partition("=")
            if equals and value and self.is_secret(unquote_plus(name)):
                parts[index] = f"{name}={self.replacement}"
                changed = True
        return "&".join(parts) if changed else text

    def scrub_body(self, body: str | None) -> str | None:
        if body is None or not self._mentions(body):
            return body
        if body.lstrip()[:1] in ("{", "["):
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                return _JSON_MEMBER.sub(self._scrub_member, body)
            if self._scrub_json(document):
                return json.dumps(document, ensure_ascii=False)
            return body
        if _FORM.fullmatch(body):
            return self.scrub_pairs(body)
        return body

    def _scrub_member(self, match: re.Match[str]) -> str:
        if not self.is_secret(match.group(1)):
            return match.group()
        return f'"{match.group(1)}"{match.group(2)}"{self.replacement}"'

    def _scrub_json(self, document: Any) -> bool:
        """Replace, in place, the value of every member whose name is secret, however deep;
        returns whether any was."""
        changed = False
        pending = [document]
        while pending:
            value = pending.pop()
            if isinstance(value, dict):
                for name, member in value.items():
                    if self.is_secret(name):
                        value[name] = self.replacement
                        changed = True
                    elif isinstance(member, (dict, list)):
                        pending.append(member)
            elif isinstance(value, list):
                pending.extend(item for item in value if isinstance(item, (dict, list)))
        return changed
