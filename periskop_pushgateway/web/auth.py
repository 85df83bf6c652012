"""Optional HTTP Basic auth: one set of credentials for pushing, one for the admin API, and
one for scraping (the export, health, metrics and the OpenAPI document stay open unless it
is set); the admin credentials also open what the scrape ones do.

Passwords are configured as werkzeug password hashes, never in plain text. Clients pass
credentials in the gateway's address (http://user:pass@gateway:7878), which every client
library turns into a Basic Authorization header. An address that keeps sending wrong ones
is refused with 429 before they cost a hash check (see throttle.py).
"""

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.datastructures import Authorization, WWWAuthenticate
from werkzeug.exceptions import Forbidden, TooManyRequests, Unauthorized
from werkzeug.security import check_password_hash

from .. import metrics
from .throttle import FailedCredentials

log = logging.getLogger(__name__)

# Which credentials each blueprint asks for.
ROLE_OF_BLUEPRINT: dict[str | None, str] = {
    "push": "PUSH",
    "admin": "ADMIN",
    "export": "SCRAPE",
    "health": "SCRAPE",
    "metrics": "SCRAPE",
    "openapi": "SCRAPE",
    # Reading the pages is like reading the export; their forms act as the admin API does.
    "pages": "SCRAPE",
    "page_actions": "ADMIN",
}
# The roles whose credentials open a blueprint besides its own: whoever may administer the
# gateway may read it too.
ALSO_ACCEPTED: dict[str, tuple[str, ...]] = {"SCRAPE": ("ADMIN",)}
REALM = "periskop-pushgateway"
_HASH_METHODS = ("scrypt:", "pbkdf2:")
# Checking a password hash is slow on purpose (tens of ms); a user name and password once
# accepted together are remembered as a keyed digest of the pair, so that a client pushing
# every second pays it once, and anything else (a wrong user name with the right password
# too) takes the same slow path.
_REMEMBERED = 64


class Credentials:
    def __init__(self, role: str, username: str, password_hash: str) -> None:
        if not password_hash.startswith(_HASH_METHODS):
            raise ValueError(
                f"PERISKOP_PUSHGATEWAY_{role}_PASSWORD_HASH is not a password hash: "
                "make one with `periskop-pushgateway hash-password`"
            )
        self.username = username
        self._password_hash = password_hash
        self._key = os.urandom(32)
        self._accepted: set[bytes] = set()

    def remembers(self, authorization: Authorization) -> bool:
        """Whether these Basic credentials were accepted before (no hash check)."""
        return self._digest(authorization) in self._accepted

    def names(self, authorization: Authorization) -> bool:
        """Whether the credentials name this user (compared in constant time)."""
        return hmac.compare_digest(_username(authorization), self.username.encode())

    def verify(self, authorization: Authorization) -> bool:
        """Check Basic credentials against the password hash (slow), remembering them if
        they are right."""
        username_ok = self.names(authorization)
        password_ok = check_password_hash(self._password_hash, authorization.password or "")
        accepted = username_ok and password_ok
        if accepted and len(self._accepted) < _REMEMBERED:
            self._accepted.add(self._digest(authorization))
        return accepted

    def _digest(self, authorization: Authorization) -> bytes:
        username = _username(authorization)
        password = (authorization.password or "").encode()
        # Length-prefixed, so that no other split of the same bytes gives the same digest.
        pair = len(username).to_bytes(4, "big") + username + password
        return hmac.new(self._key, pair, hashlib.sha256).digest()


def _username(authorization: Authorization) -> bytes:
    return (authorization.username or "").encode()


def credentials_from_config(config: Mapping[str, Any]) -> dict[str, Credentials]:
    """role -> Credentials, for each role whose username is set."""
    credentials = {}
    for role in sorted(set(ROLE_OF_BLUEPRINT.values())):
        username, password_hash = config[f"{role}_USERNAME"], config[f"{role}_PASSWORD_HASH"]
        if bool(username) != bool(password_hash):
            raise ValueError(f"PERISKOP_PUSHGATEWAY_{role}_USERNAME and _PASSWORD_HASH go together")
        if username:
            credentials[role] = Credentials(role, username, password_hash)
    return credentials


ADMIN_OFF = (
    "The admin API is off: it can resolve errors and wipe groups, so it needs credentials "
    "(PERISKOP_PUSHGATEWAY_ADMIN_USERNAME and PERISKOP_PUSHGATEWAY_ADMIN_PASSWORD_HASH), or "
    "PERISKOP_PUSHGATEWAY_ADMIN_OPEN=true on a gateway that only trusted hosts reach."
)


def admin_api_off(config: Mapping[str, Any]) -> bool:
    """Whether the admin API answers 403: it has no credentials and was not opened."""
    return not config["ADMIN_USERNAME"] and not config["ADMIN_OPEN"]


def install_auth(
    app: Flask,
    credentials: Mapping[str, Credentials],
    admin_off: bool = False,
    failures_per_minute: int = 10,
) -> None:
    """Ask each blueprint's role for its credentials, where configured; the admin API is
    refused (403) when admin_off (admin_api_off). An address whose credentials failed
    failures_per_minute times within a minute gets 429 for anything but credentials accepted
    before, so that guessing costs this worker no more hash checks."""
    if not credentials and not admin_off:
        return
    failures = FailedCredentials(failures_per_minute, window_seconds=60)

    @app.before_request
    def require_credentials() -> None:
        role = ROLE_OF_BLUEPRINT.get(request.blueprint)
        if role == "ADMIN" and admin_off:
            raise Forbidden(ADMIN_OFF)
        # Credentials are found under roles alone: past this, role is one.
        required = credentials.get(role)  # type: ignore[arg-type]
        if required is None:
            return
        accepted = [required] + [
            credentials[other]
            for other in ALSO_ACCEPTED.get(role, ())  # type: ignore[arg-type]
            if other in credentials
        ]
        authorization = request.authorization
        if authorization is None or authorization.type != "basic":
            # Costs no hash check, so neither counted nor throttled.
            raise _unauthorized(role)  # type: ignore[arg-type]
        if any(each.remembers(authorization) for each in accepted):
            return
        # Checked against the credentials naming its user; a wrong user name against the
        # role's own, so that it costs the same as a wrong password.
        candidates = [each for each in accepted if each.names(authorization)] or [required]
        address = request.remote_addr
        wait = failures.seconds_to_wait(address)
        if wait:
            if role == "PUSH":
                metrics.PUSHES.labels("throttled").inc()
            raise TooManyRequests(
                f"too many failed credentials from {address}; retry in {wait} s",
                retry_after=wait,
            )
        if any(each.verify(authorization) for each in candidates):
            return
        if failures.record_failure(address):
            log.warning(
                "%d failed credentials from %s within a minute: refusing it with 429",
                failures_per_minute,
                address,
            )
        raise _unauthorized(role)  # type: ignore[arg-type]


def _unauthorized(role: str) -> Unauthorized:
    if role == "PUSH":
        metrics.PUSHES.labels("unauthorized").inc()
    return Unauthorized(f"{role.lower()} credentials are required", www_authenticate=_challenge())


def _challenge() -> WWWAuthenticate:
    return WWWAuthenticate("basic", {"realm": REALM, "charset": "UTF-8"})
