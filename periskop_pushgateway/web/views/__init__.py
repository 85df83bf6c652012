"""The HTTP endpoints, one blueprint each; they translate HTTP to store calls and back."""

from typing import TYPE_CHECKING

from flask import current_app
from werkzeug.routing import BaseConverter

if TYPE_CHECKING:
    from ...app import Gateway
    from ...storage.store import Store


class GroupNameConverter(BaseConverter):
    """Group names as they appear in /services/<name>/...; anything else is a 404."""

    regex = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}"


class AggregationKeyConverter(BaseConverter):
    """Any aggregation key a push may hold, percent-encoded in the path: with slashes, a
    leading one, line breaks (werkzeug's own `path` takes none of those last two)."""

    regex = r"[\s\S]+"
    part_isolating = False


class KeyDigestConverter(BaseConverter):
    """A key on the pages, by the hex of its 16-byte digest (planning.key_digest): a key of
    MAX_KEY_LENGTH characters is too long for a request line, its digest never is."""

    regex = r"[0-9a-f]{32}"

    def to_python(self, value: str) -> bytes:
        return bytes.fromhex(value)

    def to_url(self, value: bytes) -> str:
        return value.hex()


# The pages for people (HTML), not part of the API that openapi.json describes.
PAGE_BLUEPRINTS = ("pages", "page_actions")


def current_gateway() -> "Gateway":
    """The app's Gateway (app.py): its store and its push loader."""
    return current_app.extensions["periskop_pushgateway"]


def current_store() -> "Store":
    return current_gateway().store
