"""Optional HTTP Basic auth: one set of credentials for pushing, one for the admin API, and
one for scraping (the export, health, metrics and the OpenAPI document stay open unless it
is set); the admin credentials also open what the scrape ones do.

Passwords are configured as werkzeug password hashes, never in plain text. Clients pass
credentials in the gateway's address (http://user:pass@gateway:7878), which every client
library turns into a Basic Authorization header. Checking a hash is slow on purpose, so the
gateway's workers share what bounds those checks (throttle.py): a user name that keeps failing
from an address is refused with 429 before it costs another, and the whole gateway makes at
most AUTH_CHECKS_PER_SECOND of them.
"""

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.datastructures import Authorization, WWWAuthenticate
from werkzeug.exceptions import Forbidden, TooManyRequests, Unauthorized
from werkzeug.security import check_password_hash

from .. import metrics
from .throttle import Admission, CredentialRecords, failure_key, shared_records_path

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
        self.role = role
        self.username = username
        self._password_hash = password_hash
        # Drawn before the workers fork (the app is preloaded), so that they all make the same
        # digests and share those accepted (throttle.py); it is never written anywhere.
        self._key = os.urandom(32)
        self._accepted: set[bytes] = set()

    def remembers(self, authorization: Authorization) -> bool:
        """Whether this worker accepted these Basic credentials before (no hash check)."""
        return self.digest(authorization) in self._accepted

    def remember(self, digest: bytes) -> None:
        """Accept the credentials of this digest from now on without a check."""
        if len(self._accepted) < _REMEMBERED:
            self._accepted.add(digest)

    def names(self, authorization: Authorization) -> bool:
        """Whether the credentials name this user (compared in constant time)."""
        return hmac.compare_digest(_username(authorization), self.username.encode())

    def verify(self, authorization: Authorization) -> bool:
        """Check Basic credentials against the password hash (slow), remembering them if
        they are right."""
        username_ok = self.names(authorization)
        password_ok = check_password_hash(self._password_hash, authorization.password or "")
        accepted = username_ok and password_ok
        metrics.PASSWORD_CHECKS.labels("accepted" if accepted else "refused").inc()
        if accepted:
            self.remember(self.digest(authorization))
        return accepted

    def digest(self, authorization: Authorization) -> bytes:
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
    checks_per_second: int = 1,
) -> None:
    """Ask each blueprint's role for its credentials (or those of ALSO_ACCEPTED), where
    configured; the admin API is refused (403) when admin_off (admin_api_off).

    Credentials no worker accepted before cost a password hash check, unless refused with
    429 first: when their user name failed failures_per_minute times from the client's
    address within a minute, or when the gateway made checks_per_second checks a second
    lately (throttle.py)."""
    if not credentials and not admin_off:
        return
    records = CredentialRecords(
        # Only a gateway asking for credentials checks any.
        shared_records_path() if credentials else None,
        max_failures=failures_per_minute,
        checks_per_second=checks_per_second,
        window_seconds=60,
    )
    app.extensions["periskop_pushgateway_credentials"] = records
    budget_spent_logged = [-60.0]  # when this worker last said so

    @app.before_request
    def require_credentials() -> None:
        role = ROLE_OF_BLUEPRINT.get(request.blueprint)
        if role == "ADMIN" and admin_off:
            raise Forbidden(ADMIN_OFF)
        # Credentials are found under roles alone: past this, role is one.
        required = credentials.get(role)  # type: ignore[arg-type]
        if required is None:
            return
        role = required.role
        accepted = [required] + [
            credentials[other] for other in ALSO_ACCEPTED.get(role, ()) if other in credentials
        ]
        authorization = request.authorization
        if authorization is None or authorization.type != "basic":
            # Costs no hash check, so neither counted nor throttled.
            raise _unauthorized(role)
        if any(each.remembers(authorization) for each in accepted):
            return
        # Those naming their user; a wrong user name is checked against the role's own hash,
        # so that it costs the same as a wrong password.
        candidates = [each for each in accepted if each.names(authorization)] or [required]
        digests = {each.digest(authorization): each for each in candidates}
        key = failure_key(authorization.username, request.remote_addr)
        admission = records.admit(key, list(digests), checks=len(candidates))
        if admission.accepted is not None:
            digests[admission.accepted].remember(admission.accepted)
            return
        if admission.wait:
            raise _throttled(role, admission, budget_spent_logged, checks_per_second)
        for each in candidates:
            if each.verify(authorization):
                records.record_accepted(each.digest(authorization))
                return
        if records.record_failure(key):
            log.warning(
                "%d failed credentials for one user name from %s within a minute: refusing "
                "that user name from there with 429",
                failures_per_minute,
                request.remote_addr,
            )
        raise _unauthorized(role)


def _throttled(
    role: str, admission: Admission, logged: list[float], checks_per_second: int
) -> TooManyRequests:
    metrics.CREDENTIALS_THROTTLED.labels(admission.reason).inc()
    if role == "PUSH":
        metrics.PUSHES.labels("throttled").inc()
    if admission.reason == "failures":
        why = f"too many failed credentials for this user name from {request.remote_addr}"
    else:
        why = "too many password checks at this moment"
        if time.monotonic() - logged[0] >= 60:
            logged[0] = time.monotonic()
            log.warning(
                "the gateway's %d password checks a second are spent: credentials not "
                "accepted before get 429 meanwhile",
                checks_per_second,
            )
    wait = admission.wait
    return TooManyRequests(f"{why}; retry in {wait} s", retry_after=wait)


def _unauthorized(role: str) -> Unauthorized:
    if role == "PUSH":
        metrics.PUSHES.labels("unauthorized").inc()
    return Unauthorized(f"{role.lower()} credentials are required", www_authenticate=_challenge())


def _challenge() -> WWWAuthenticate:
    return WWWAuthenticate("basic", {"realm": REALM, "charset": "UTF-8"})
