"""Secrets in pushed request headers never reach the database, nor Periskop."""

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


def header_key(name):
    """Header names compare case-insensitively, without surrounding white space, with "_" as
    "-", and in every form a client may have captured them: plain, CGI and Rack's
    (HTTP_AUTHORIZATION, as the Ruby client sends them) and Apache's after an internal
    redirect (REDIRECT_HTTP_AUTHORIZATION, REDIRECT_REDIRECT_…)."""
    name = name.strip().lower().replace("_", "-")
    while name.startswith("redirect-"):
        name = name[len("redirect-") :]
    return name.removeprefix("http-")


def is_reported(name):
    """Whether the gateway's report of a rejected push keeps this request header."""
    return header_key(name) in REPORTED_HEADERS


class Scrubber:
    def __init__(self, extra_headers=(), drop_request_body=False):
        self._sensitive = frozenset(
            header_key(name) for name in (*DEFAULT_SENSITIVE_HEADERS, *extra_headers)
        )
        self.drop_request_body = drop_request_body
        self._verdicts = {}

    @classmethod
    def from_config(cls, config):
        extra = [name.strip() for name in config["SCRUB_HEADERS"].split(",") if name.strip()]
        return cls(extra, config["DROP_REQUEST_BODY"])

    def is_sensitive(self, name):
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = header_key(name) in self._sensitive
            if len(self._verdicts) < _REMEMBERED:
                self._verdicts[name] = verdict
        return verdict

    def scrub(self, http_context):
        """A pushed http_context with sensitive header values replaced by [Filtered], and
        without its body when so configured."""
        if http_context is None:
            return None
        headers = http_context["request_headers"]
        if headers:
            http_context["request_headers"] = {
                name: FILTERED if self.is_sensitive(name) else value
                for name, value in headers.items()
            }
        if self.drop_request_body:
            http_context["request_body"] = None
        return http_context
