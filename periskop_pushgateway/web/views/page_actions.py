"""The admin actions on the pages: resolve a key, wipe a group.

Each is a confirmation page (GET) whose form POSTs back with a token signed for that action
(form_tokens.py, against cross-site request forgery). Both take the admin role's credentials
and are off with the admin API (auth.py); they change the store as the admin API does.
"""

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, abort, current_app, redirect, render_template, request

from ...groups import DEFAULT_GROUP, describe_group
from ...storage import browse
from ..form_tokens import FormTokens
from . import current_store, page_common

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue
    from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

blueprint = Blueprint("page_actions", __name__)
page_common.install(blueprint)

_TOKENS = "periskop_pushgateway.web.form_tokens"


@blueprint.route("/-/keys/<digest:digest>/resolve", methods=["GET", "POST"])
@blueprint.route("/services/<group:group>/-/keys/<digest:digest>/resolve", methods=["GET", "POST"])
def resolve(digest: bytes, group: str = DEFAULT_GROUP) -> "ResponseReturnValue":
    found = browse.key_detail(current_store(), group, digest)
    if found is None or found.aggregate.hidden:
        abort(404, f"No exported key with this digest in {describe_group(group)}.")
    key = found.aggregate.aggregation_key
    if request.method == "GET":
        return _confirm("resolve", group, digest.hex(), key=key, count=found.aggregate.total_count)
    _check_token("resolve", group, digest.hex())
    if not current_store().resolve(group, key):
        abort(404, f"No exported key with this digest in {describe_group(group)}.")
    log.info("resolved group=%s key=%s (page)", group or "-", key)
    return _back_to_group(group, "resolved")


@blueprint.route("/-/wipe", methods=["GET", "POST"])
@blueprint.route("/services/<group:group>/-/wipe", methods=["GET", "POST"])
def wipe(group: str = DEFAULT_GROUP) -> "ResponseReturnValue":
    if request.method == "GET":
        found = browse.find_group(current_store(), group)
        if found is None:
            abort(404, f"Nothing was ever pushed to {describe_group(group)}.")
        return _confirm("wipe", group, target_uuid=found.target_uuid)
    _check_token("wipe", group)
    target_uuid = current_store().wipe(group)
    if target_uuid is None:
        abort(404, f"Nothing was ever pushed to {describe_group(group)}.")
    log.warning("wiped group=%s new target_uuid=%s (page)", group or "-", target_uuid)
    return _back_to_group(group, "wiped")


def _confirm(action: str, group: str, digest: str = "", **shown: Any) -> str:
    token = _tokens().issue(action, group, digest)
    return render_template("pages/confirm.html", action=action, group=group, token=token, **shown)


def _check_token(action: str, group: str, digest: str = "") -> None:
    if not _tokens().valid(request.form.get("token"), action, group, digest):
        abort(
            400,
            "This form was not shown by this gateway within the last hour (or it was altered): "
            "nothing was changed. Open the confirmation page again.",
        )


def _back_to_group(group: str, done: str) -> "Response":
    # 303: the browser follows with a GET, and reloading that page repeats nothing.
    return redirect(page_common.page_url("pages.group_page", group, done=done), 303)


def _tokens() -> FormTokens:
    tokens = current_app.extensions.get(_TOKENS)
    if tokens is None:
        tokens = current_app.extensions[_TOKENS] = FormTokens(
            current_store(), current_app.config["SECRET_KEY"]
        )
    return tokens
