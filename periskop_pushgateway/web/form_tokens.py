"""Tokens the pages' admin forms carry, against cross-site request forgery.

A browser sends the gateway's Basic credentials with every request to it, one that another
site's page makes too. So a form's POST is carried out only with a token the gateway signed
for that very action (resolve this key of this group, wipe this group) when it showed the
confirmation page, which another site cannot read. The token binds no session: whoever can
read a confirmation page may already take its action through the admin API.

The signing key is SECRET_KEY when configured, else one drawn once and kept in the database
(the `secrets` table): every worker and every instance on the database signs alike.
"""

import secrets as random_source
import threading
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from ..storage.models import secrets

if TYPE_CHECKING:
    from ..storage.store import Store

# A confirmation page left open longer than this is shown again to be confirmed afresh.
MAX_AGE_SECONDS = 3600
_SECRET_NAME = "form_tokens"
_SALT = "periskop-pushgateway page form"
_READ_SECRET = select(secrets.c.value).where(secrets.c.name == _SECRET_NAME)


class FormTokens:
    def __init__(self, store: "Store", configured_key: str = "") -> None:
        self._store = store
        self._configured_key = configured_key
        self._serializer: URLSafeTimedSerializer | None = None
        self._lock = threading.Lock()

    def issue(self, action: str, group: str, key_digest: str = "") -> str:
        """A token for one action on one group (and key)."""
        return self._signer().dumps([action, group, key_digest])

    def valid(self, token: str | None, action: str, group: str, key_digest: str = "") -> bool:
        """Whether `token` was issued for this action, group and key, within the hour."""
        try:
            signed = self._signer().loads(token or "", max_age=MAX_AGE_SECONDS)
        except BadSignature:  # expired tokens too (SignatureExpired)
            return False
        return signed == [action, group, key_digest]

    def _signer(self) -> URLSafeTimedSerializer:
        # Read on first use, not at start: a gateway nobody browses never writes the secret.
        with self._lock:
            if self._serializer is None:
                key = self._configured_key or stored_secret(self._store)
                self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
            return self._serializer


def stored_secret(store: "Store") -> str:
    """The form-signing key kept in the database, drawn and saved by the first process to ask."""
    value = store.read_snapshot(lambda connection: connection.execute(_READ_SECRET).scalar())
    if value is not None:
        return value

    def create(connection: Connection) -> str:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(secrets).values(name=_SECRET_NAME, value=random_source.token_hex(32))
                )
        except IntegrityError:
            pass  # another instance saved one first: it is the one
        return connection.execute(_READ_SECRET).scalar_one()

    return store.run_write(create)
