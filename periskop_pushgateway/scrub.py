"""Request headers that carry secrets and must never reach Periskop."""

SENSITIVE_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
)


def header_key(name):
    """Compare header names case-insensitively, and in the Rack form the Ruby client sends
    (HTTP_AUTHORIZATION, HTTP_X_API_KEY) as in the plain one."""
    name = name.lower()
    if name.startswith("http_"):
        name = name[5:]
    return name.replace("_", "-")


def is_sensitive(name):
    return header_key(name) in SENSITIVE_HEADERS
