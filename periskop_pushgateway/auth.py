"""Optional HTTP Basic auth: one set of credentials for pushing, one for the admin API, and
one for scraping (the export, health, metrics and the OpenAPI document stay open unless it
is set).

Passwords are configured as werkzeug password hashes, never in plain text. Clients pass
credentials in the gateway's address (http://user:pass@gateway:7878), which every client
library turns into a Basic Authorization header.
"""

import hashlib
import hmac
import os

from flask import request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized
from werkzeug.security import check_password_hash

from . import metrics

# Which credentials each blueprint asks for.
ROLE_OF_BLUEPRINT = {
    "push": "PUSH",
    "admin": "ADMIN",
    "export": "SCRAPE",
    "health": "SCRAPE",
    "metrics": "SCRAPE",
    "openapi": "SCRAPE",
}
REALM = "periskop-pushgateway"
_HASH_METHODS = ("scrypt:", "pbkdf2:")
# Checking a password hash is slow on purpose (tens of ms); a user name and password once
# accepted together are remembered as a keyed digest of the pair, so that a client pushing
# every second pays it once, and anything else (a wrong user name with the right password
# too) takes the same slow path.
_REMEMBERED = 64


class Credentials:
    def __init__(self, role, username, password_hash):
        if not password_hash.startswith(_HASH_METHODS):
            raise ValueError(
                f"PERISKOP_PUSHGATEWAY_{role}_PASSWORD_HASH is not a password hash: "
                "make one with `periskop-pushgateway hash-password`"
            )
        self.username = username
        self._password_hash = password_hash
        self._key = os.urandom(32)
        self._accepted = set()

    def accept(self, authorization):
        if authorization is None or authorization.type != "basic":
            return False
        username = (authorization.username or "").encode()
        password = (authorization.password or "").encode()
        # Length-prefixed, so that no other split of the same bytes gives the same digest.
        pair = len(username).to_bytes(4, "big") + username + password
        digest = hmac.new(self._key, pair, hashlib.sha256).digest()
        if digest in self._accepted:
            return True
        username_ok = hmac.compare_digest(username, self.username.encode())
        password_ok = check_password_hash(self._password_hash, password.decode())
        accepted = username_ok and password_ok
        if accepted and len(self._accepted) < _REMEMBERED:
            self._accepted.add(digest)
        return accepted


def credentials_from_config(config):
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


def install_auth(app, credentials, admin_open=False):
    """Ask each blueprint's role for its credentials, where configured; the admin API is
    refused (403) while it has none, unless admin_open."""
    admin_off = "ADMIN" not in credentials and not admin_open
    if not credentials and not admin_off:
        return

    @app.before_request
    def require_credentials():
        role = ROLE_OF_BLUEPRINT.get(request.blueprint)
        if role == "ADMIN" and admin_off:
            raise Forbidden(ADMIN_OFF)
        required = credentials.get(role)
        if required is not None and not required.accept(request.authorization):
            if role == "PUSH":
                metrics.PUSHES.labels("unauthorized").inc()
            raise Unauthorized(
                f"{role.lower()} credentials are required",
                www_authenticate=_challenge(),
            )


def _challenge():
    return WWWAuthenticate("basic", {"realm": REALM, "charset": "UTF-8"})
