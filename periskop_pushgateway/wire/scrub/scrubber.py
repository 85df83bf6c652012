"""Secrets in pushed occurrences never reach the database, nor Periskop: sensitive request
headers, fields with secret names in the URL and body (secret_fields.py), and payment card
numbers in messages, URL and body (card_numbers.py)."""

from collections.abc import Iterable, Mapping
from typing import Any, Self

from ..fitting import copy_error
from .card_numbers import mask_card_numbers
from .secret_fields import DEFAULT_SECRET_NAMES, DEFAULT_SECRET_SUBSTRINGS, SecretFields

DEFAULT_SENSITIVE_HEADERS = (
    "Authorization",
    "Cookie",
    "Set-Cookie",
    "Proxy-Authorization",
    "X-Api-Key",
)
# What the gateway's own report of a rejected push keeps of that request's headers: these
# alone, whatever else a client sends (a custom token header is no secret the gateway knows).
REPORTED_HEADERS = frozenset(
    (
        "content-type",
        "content-length",
        "content-encoding",
        "user-agent",
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
        "x-request-id",
    )
)
FILTERED = "[Filtered]"
# Header names repeat across pushes; their verdicts are remembered, up to this many.
_REMEMBERED = 4096


def header_key(name: str) -> str:
    """Header names compare case-insensitively, without surrounding white space, with "_" as
    "-", and in every form a client may have captured them: plain, CGI and Rack's
    (HTTP_AUTHORIZATION, as the Ruby client sends them) and Apache's after an internal
    redirect (REDIRECT_HTTP_AUTHORIZATION, REDIRECT_REDIRECT_…)."""
    name = name.strip().lower().replace("_", "-")
    while name.startswith("redirect-"):
        name = name[len("redirect-") :]
    return name.removeprefix("http-")


def is_reported(name: str) -> bool:
    """Whether the gateway's report of a rejected push keeps this request header."""
    return header_key(name) in REPORTED_HEADERS


def _names(setting: str) -> list[str]:
    return [name.strip() for name in setting.split(",") if name.strip()]


class Scrubber:
    def __init__(
        self,
        extra_headers: Iterable[str] = (),
        drop_request_body: bool = False,
        extra_fields: Iterable[str] = (),
        default_fields: bool = True,
        card_numbers: bool = True,
    ) -> None:
        self._sensitive = frozenset(
            header_key(name) for name in (*DEFAULT_SENSITIVE_HEADERS, *extra_headers)
        )
        self.drop_request_body = drop_request_body
        self._verdicts: dict[str, bool] = {}
        substrings = (*(DEFAULT_SECRET_SUBSTRINGS if default_fields else ()), *extra_fields)
        names = DEFAULT_SECRET_NAMES if default_fields else ()
        self.fields = SecretFields(substrings, names, FILTERED)
        self.card_numbers = card_numbers

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            _names(config["SCRUB_HEADERS"]),
            config["DROP_REQUEST_BODY"],
            _names(config["SCRUB_FIELDS"]),
            config["SCRUB_DEFAULT_FIELDS"],
            config["SCRUB_CARD_NUMBERS"],
        )

    def is_sensitive(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = header_key(name) in self._sensitive
            if len(self._verdicts) < _REMEMBERED:
                self._verdicts[name] = verdict
        return verdict

    def scrub_occurrence(self, occurrence: dict[str, Any]) -> dict[str, Any]:
        """A scrubbed copy of a loaded occurrence: its http_context, and card numbers in the
        messages of its error and causes. The loaded occurrence is left as it is: pushes that
        repeat it share it (occurrence_cache.py)."""
        scrubbed = {**occurrence, "http_context": self.scrub(occurrence["http_context"])}
        if self.card_numbers and occurrence["error"] is not None:
            scrubbed["error"] = error = copy_error(occurrence["error"])
            while error is not None:
                error["message"] = mask_card_numbers(error["message"], FILTERED)
                error = error["cause"]
        return scrubbed

    def scrub(self, http_context: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A copy of a pushed http_context with sensitive header values replaced by
        [Filtered], as are secret fields of its URL and body and card numbers in them; without
        its body when so configured."""
        if http_context is None:
            return None
        http_context = dict(http_context)
        headers = http_context["request_headers"]
        if headers:
            http_context["request_headers"] = {
                name: FILTERED if self.is_sensitive(name) else value
                for name, value in headers.items()
            }
        if self.drop_request_body:
            http_context["request_body"] = None
        url = self.fields.scrub_url(http_context["request_url"])
        body = self.fields.scrub_body(http_context["request_body"])
        if self.card_numbers:
            url = mask_card_numbers(url, FILTERED)
            body = mask_card_numbers(body, FILTERED)
        http_context["request_url"] = url
        http_context["request_body"] = body
        return http_context
