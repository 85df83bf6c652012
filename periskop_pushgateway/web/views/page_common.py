"""What every page shares: its security headers, HTML error pages, and how times are shown."""

from datetime import timedelta
from typing import Any

import humanize
from flask import Blueprint, Response, current_app, render_template, url_for
from werkzeug.exceptions import HTTPException

from ...wire.timestamps import format_rfc3339_ns, now_ns
from ..auth import admin_api_off

# Pushed text is shown as text (Jinja's autoescape); should any ever slip through as markup,
# the browser still runs no script but the gateway's own files, sends no form elsewhere,
# and shows no page inside another site's frame (a confirmation clicked through unseen).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def install(blueprint: Blueprint) -> None:
    blueprint.after_request(_security_headers)
    # Flask's types take no None status, which Flask itself handles (the status stays as set).
    blueprint.register_error_handler(HTTPException, _error_page)  # type: ignore[arg-type]
    blueprint.app_template_filter("utc")(utc)
    blueprint.app_template_filter("rfc3339")(format_rfc3339_ns)
    blueprint.app_template_filter("ago")(ago)
    blueprint.app_context_processor(_admin_state)
    blueprint.app_template_global("page_url")(page_url)


def page_url(endpoint: str, group: str, **values: Any) -> str:
    """The URL of a page of a group: the default group's pages have no /services/<name>."""
    if group:
        values["group"] = group
    return url_for(endpoint, **values)


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _error_page(error: HTTPException) -> tuple[str, int | None, list[tuple[str, str]]]:
    # WWW-Authenticate (401, so the browser asks for credentials), Retry-After (429) stay.
    headers = [(name, value) for name, value in error.get_headers() if name != "Content-Type"]
    return render_template("pages/error.html", error=error), error.code, headers


def utc(ns: int) -> str:
    seconds = ns // 10**9
    return format_rfc3339_ns(seconds * 10**9).replace("T", " ").replace("Z", " UTC")


def ago(ns: int) -> str:
    return humanize.naturaltime(timedelta(microseconds=(now_ns() - ns) // 1000))


def _admin_state() -> dict[str, str]:
    """How the admin buttons read: what they need, or why they are off."""
    config = current_app.config
    if admin_api_off(config):
        admin = "off"
    elif config["ADMIN_USERNAME"]:
        admin = "credentials"
    else:
        admin = "open"
    return {"admin": admin}
