"""Secrets in pushed request headers are replaced before anything is stored."""

from pathlib import Path

import pytest

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape


def push_headers(client, headers, body="q=monthly+report"):
    context = {
        "request_method": "POST",
        "request_url": "http://app/login",
        "request_headers": headers,
        "request_body": body,
    }
    assert (
        post(client, push_body(aggregate("k", 1, [occurrence(http_context=context)]))).status_code
        == 200
    )
    return by_key(scrape(client))["k"]["latest_errors"][0]["http_context"]


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "authorization",
        "AUTHORIZATION",
        "Cookie",
        "Set-Cookie",
        "Proxy-Authorization",
        "X-Api-Key",
        "x-api-key",
        # The Ruby client's Rack form:
        "HTTP_AUTHORIZATION",
        "HTTP_COOKIE",
        "HTTP_X_API_KEY",
        "HTTP_PROXY_AUTHORIZATION",
        # Surrounding white space, "-" for "_", and Apache's form after an internal redirect:
        " Authorization",
        "Authorization\t",
        "HTTP-AUTHORIZATION",
        "http_x-api-key",
        "REDIRECT_HTTP_AUTHORIZATION",
        "REDIRECT_REDIRECT_HTTP_COOKIE",
    ],
)
def test_sensitive_headers_are_filtered_in_any_spelling(client, name):
    context = push_headers(client, {name: "secret-value", "Accept": "*/*"})
    assert context["request_headers"] == {name: "[Filtered]", "Accept": "*/*"}


@pytest.mark.sqlite_only
def test_secrets_never_reach_the_database_file(client, database_url):
    push_headers(client, {"Authorization": "Bearer very-secret-token", "Cookie": "sid=s3cr3t"})
    path = Path(database_url.removeprefix("sqlite:///"))
    files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
    data = b"".join(p.read_bytes() for p in files)
    assert b"[Filtered]" in data  # what was stored is where this test looks
    assert b"very-secret-token" not in data and b"s3cr3t" not in data


def test_more_headers_can_be_named_and_bodies_dropped(make_app):
    client = make_app(SCRUB_HEADERS="X-Session, x_csrf_token", DROP_REQUEST_BODY=True).test_client()
    context = push_headers(client, {"X-Session": "a", "X-CSRF-Token": "b", "X-Trace": "c"})
    assert context["request_headers"] == {
        "X-Session": "[Filtered]",
        "X-CSRF-Token": "[Filtered]",
        "X-Trace": "c",
    }
    assert context["request_body"] is None


def test_request_bodies_are_kept_by_default(client):
    assert push_headers(client, {})["request_body"] == "q=monthly+report"
