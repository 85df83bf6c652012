"""The pages for people: every group at a glance (/), a group's keys, one key's occurrences.

Server-rendered; they need no JavaScript. Reading them takes the scrape role's credentials,
as the export does (auth.py).
"""

from flask import Blueprint, abort, current_app, render_template, request
from werkzeug.datastructures import MultiDict

from ...groups import DEFAULT_GROUP, describe_group
from ...storage import browse
from ...wire.schemas import SEVERITIES
from ...wire.timestamps import now_ns
from . import current_store, page_common

blueprint = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/-/static",
)
page_common.install(blueprint)

PAGE_SIZE = 100
# A filter longer than any key could not match more than a shorter part of it.
_MAX_FILTER_LENGTH = 1024
# Stack traces and request bodies longer than this many lines are shown folded.
FOLD_LINES = 20
# How far back the overview counts rejected pushes.
REJECTIONS_SINCE_NS = 24 * 3600 * 10**9
# What an admin form's redirect says it did (page_actions.py).
NOTICES: dict[str | None, str] = {
    "resolved": "Resolved: the key left the export. Its count is kept; it comes back when it "
    "happens again.",
    "wiped": "Wiped: every key of the group is gone, and it exports a new target_uuid.",
}


@blueprint.get("/")
def overview() -> str:
    groups = browse.overview(current_store(), now_ns() - REJECTIONS_SINCE_NS)
    return render_template("pages/overview.html", groups=groups)


@blueprint.get("/-/keys")
@blueprint.get("/services/<group:group>/-/keys")
def group_page(group: str = DEFAULT_GROUP) -> str:
    key_filter, page = _key_filter(request.args)
    found = browse.keys_page(current_store(), group, key_filter, page, PAGE_SIZE)
    if found is None:
        abort(404, f"Nothing was ever pushed to {describe_group(group)}.")
    if page > found.pages:
        abort(404, f"There is no page {page}: {describe_group(group)} has {found.pages} of these.")
    return render_template(
        "pages/group.html",
        group=group,
        found=found,
        key_filter=key_filter,
        severities=SEVERITIES,
        sorts=browse.SORTS,
        notice=NOTICES.get(request.args.get("done")),
        max_keys=current_app.config["MAX_KEYS_PER_GROUP"],
    )


@blueprint.get("/-/keys/<digest:digest>")
@blueprint.get("/services/<group:group>/-/keys/<digest:digest>")
def key_page(digest: bytes, group: str = DEFAULT_GROUP) -> str:
    found = browse.key_detail(current_store(), group, digest)
    if found is None:
        abort(404, f"No such key in {describe_group(group)}.")
    return render_template(
        "pages/key.html",
        group=group,
        found=found,
        fold_lines=FOLD_LINES,
    )


def _key_filter(args: MultiDict[str, str]) -> tuple[browse.KeyFilter, int]:
    """(KeyFilter, page) from the group page's query; 400 for anything it cannot mean."""
    sort = args.get("sort", "last_seen")
    if sort not in browse.SORTS:
        abort(400, f"Unknown sort {sort!r}: sort by one of {', '.join(browse.SORTS)}.")
    order = args.get("order", "")
    if order not in ("", "asc", "desc"):
        abort(400, f"Unknown order {order!r}: asc or desc.")
    descending = order == "desc" if order else browse.SORTS[sort][1]
    severity = args.get("severity", "")
    if severity and severity not in SEVERITIES:
        abort(400, f"Unknown severity {severity!r}: one of {', '.join(SEVERITIES)}, or none.")
    text = args.get("q", "").strip()
    if len(text) > _MAX_FILTER_LENGTH or "\x00" in text:
        abort(400, f"The filter takes up to {_MAX_FILTER_LENGTH} characters, and no NUL.")
    page = args.get("page", "1")
    if not page.isascii() or not page.isdigit() or int(page) < 1:
        abort(400, f"Page {page!r} is not a page number: 1, 2, 3 ...")
    return browse.KeyFilter(sort, descending, severity or None, text), int(page)
