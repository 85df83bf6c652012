"""What the pages read: every group at a glance, a group's keys a page at a time, one key with
its occurrences, and the gateway's own reports of rejected pushes. Read only, each page in
one snapshot; sorting, filtering and paging happen in SQL (LIMIT/OFFSET), so a group of
MAX_KEYS_PER_GROUP keys costs its first page about what it costs to sort them, not to send
them."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Row, exists, func, or_, select

from ..reports import REJECTION_KEYS, REPORT_GROUP, rejected_group
from .engines import json_text
from .models import aggregates, groups, occurrences
from .planning import key_digest
from .statements import GROUP_BY_NAME
from .store import Store, empty_group_uuid

# Each sort: its column, and whether it runs from the highest down unless told otherwise.
SORTS = {
    "last_seen": (aggregates.c.last_seen_ns, True),
    "count": (aggregates.c.total_count, True),
    "key": (aggregates.c.aggregation_key, False),
}
_CLASS = ("error", "class")
_MESSAGE = ("error", "message")


@dataclass(frozen=True)
class KeyFilter:
    sort: str = "last_seen"
    descending: bool = True
    severity: str | None = None  # None: every severity
    text: str = ""  # in the key, or the class or message of any stored occurrence


@dataclass(frozen=True)
class KeysPage:
    group: Row  # its row: id, target_uuid, revision, last_push_ns
    keys: list  # rows: aggregate columns, latest_class, latest_message
    matching: int  # keys the filter matches, on every page
    page: int
    pages: int


@dataclass(frozen=True)
class KeyDetail:
    group: Row
    aggregate: Row
    occurrences: list  # (timestamp_ns, occurrence as exported, a dict), newest first


@dataclass(frozen=True)
class Rejections:
    count: int
    latest_ns: int
    latest_digest: bytes  # the latest report's key, for its page


@dataclass(frozen=True)
class GroupSummary:
    name: str  # "" for the default group
    target_uuid: str
    exported: int  # keys
    hidden: int  # keys resolved or past retention, their counts remembered
    exported_count: int  # the sum of the exported keys' counts
    last_push_ns: int | None  # None: nothing was ever stored in it
    rejections: Rejections | None  # since the time overview() was given


def overview(store: Store, rejections_since_ns: int) -> list[GroupSummary]:
    """Every group, the default one first, also one nothing was stored in yet (the default
    group, or a group whose every push was rejected)."""
    rows, _size = store.status()
    rejections = recent_rejections(store, rejections_since_ns)
    summaries = {
        row.name: GroupSummary(
            row.name,
            row.target_uuid,
            row.exported,
            row.stored - row.exported,
            int(row.exported_count),  # summed as a float (store.status)
            row.last_push_ns,
            rejections.get(row.name),
        )
        for row in rows
    }
    for name in {REPORT_GROUP, *rejections} - set(summaries):
        summaries[name] = GroupSummary(
            name, empty_group_uuid(name), 0, 0, 0, None, rejections.get(name)
        )
    return [summaries[name] for name in sorted(summaries)]


def find_group(store: Store, group_name: str) -> Row | None:
    """The group's row (id, target_uuid, revision, last_push_ns), or None."""
    return store.read_snapshot(
        lambda connection: connection.execute(GROUP_BY_NAME, {"name": group_name}).first()
    )


def keys_page(
    store: Store, group_name: str, key_filter: KeyFilter, page: int, page_size: int
) -> KeysPage | None:
    """One page of the group's exported keys, or None when there is no such group."""

    def read(connection: Connection) -> KeysPage | None:
        group = connection.execute(GROUP_BY_NAME, {"name": group_name}).first()
        if group is None:
            return None
        matching_keys = _matching(connection.dialect.name, group.id, key_filter)
        matching = connection.execute(
            select(func.count()).select_from(aggregates).where(*matching_keys)
        ).scalar_one()
        pages = max(1, -(-matching // page_size))
        if page > pages:
            return KeysPage(group, [], matching, page, pages)
        column, _ = SORTS[key_filter.sort]
        order = column.desc() if key_filter.descending else column.asc()
        # The id breaks ties, so that a key appears on exactly one page.
        tie = aggregates.c.id.desc() if key_filter.descending else aggregates.c.id.asc()
        rows = connection.execute(
            select(
                aggregates.c.id,
                aggregates.c.aggregation_key,
                aggregates.c.key_digest,
                aggregates.c.total_count,
                aggregates.c.severity,
                aggregates.c.last_seen_ns,
            )
            .where(*matching_keys)
            .order_by(order, tie)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
        latest = _latest_errors(connection, [row.id for row in rows])
        keys = [
            {**row._asdict(), **latest.get(row.id, {"class": None, "message": None})}
            for row in rows
        ]
        return KeysPage(group, keys, matching, page, pages)

    return store.read_snapshot(read)


def _matching(dialect_name: str, group_id: int, key_filter: KeyFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        aggregates.c.group_id == group_id,
        aggregates.c.hidden.is_(False),
    ]
    if key_filter.severity:
        conditions.append(aggregates.c.severity == key_filter.severity)
    if key_filter.text:
        text = key_filter.text
        body = occurrences.c.body
        conditions.append(
            or_(
                aggregates.c.aggregation_key.icontains(text, autoescape=True),
                exists().where(
                    occurrences.c.aggregate_id == aggregates.c.id,
                    or_(
                        json_text(dialect_name, body, _CLASS).icontains(text, autoescape=True),
                        json_text(dialect_name, body, _MESSAGE).icontains(text, autoescape=True),
                    ),
                ),
            )
        )
    return conditions


def _latest_errors(connection: Connection, aggregate_ids: list[int]) -> dict[int, dict[str, Any]]:
    """aggregate id -> {"class", "message"} of its newest stored occurrence."""
    if not aggregate_ids:
        return {}
    # Ranked by id and time alone: only the newest of each is read as JSON.
    ranked = (
        select(
            occurrences.c.id,
            func.row_number()
            .over(
                partition_by=occurrences.c.aggregate_id,
                order_by=(occurrences.c.timestamp_ns.desc(), occurrences.c.id.desc()),
            )
            .label("rank"),
        )
        .where(occurrences.c.aggregate_id.in_(aggregate_ids))
        .subquery()
    )
    dialect = connection.dialect.name
    rows = connection.execute(
        select(
            occurrences.c.aggregate_id,
            json_text(dialect, occurrences.c.body, _CLASS).label("class_"),
            json_text(dialect, occurrences.c.body, _MESSAGE).label("message"),
        )
        .join(ranked, ranked.c.id == occurrences.c.id)
        .where(ranked.c.rank == 1)
    )
    return {row.aggregate_id: {"class": row.class_, "message": row.message} for row in rows}


def key_detail(store: Store, group_name: str, digest: bytes) -> KeyDetail | None:
    """A key of the group (by its 16-byte digest), exported or not, with its stored
    occurrences; None when the group or the key is unknown."""

    def read(connection: Connection) -> KeyDetail | None:
        group = connection.execute(GROUP_BY_NAME, {"name": group_name}).first()
        if group is None:
            return None
        aggregate = connection.execute(
            select(aggregates).where(
                aggregates.c.group_id == group.id, aggregates.c.key_digest == digest
            )
        ).first()
        if aggregate is None:
            return None
        rows = connection.execute(
            select(occurrences.c.timestamp_ns, occurrences.c.body)
            .where(occurrences.c.aggregate_id == aggregate.id)
            .order_by(occurrences.c.timestamp_ns.desc(), occurrences.c.id.desc())
        )
        found = [(row.timestamp_ns, orjson.loads(row.body)) for row in rows]
        return KeyDetail(group, aggregate, found)

    return store.read_snapshot(read)


def recent_rejections(store: Store, since_ns: int) -> dict[str, Rejections]:
    """group name -> Rejections: the rejected pushes the gateway reported in its default group
    since since_ns, among the occurrences it keeps (the newest OCCURRENCES_PER_KEY of each
    kind), read from the reports still exported."""

    def read(connection: Connection) -> Sequence[Row]:
        return connection.execute(
            select(
                aggregates.c.key_digest,
                occurrences.c.timestamp_ns,
                json_text(connection.dialect.name, occurrences.c.body, _MESSAGE).label("message"),
            )
            .select_from(
                groups.join(aggregates, aggregates.c.group_id == groups.c.id).join(
                    occurrences, occurrences.c.aggregate_id == aggregates.c.id
                )
            )
            .where(
                groups.c.name == REPORT_GROUP,
                aggregates.c.hidden.is_(False),
                aggregates.c.key_digest.in_([key_digest(key) for key in REJECTION_KEYS]),
                occurrences.c.timestamp_ns >= since_ns,
            )
            .order_by(occurrences.c.timestamp_ns)
        ).all()

    found: dict[str, Rejections] = {}
    for row in store.read_snapshot(read):
        group = rejected_group(row.message)
        if group is None:
            continue
        before = found.get(group)
        found[group] = Rejections(
            (before.count if before else 0) + 1, row.timestamp_ns, row.key_digest
        )
    return found
