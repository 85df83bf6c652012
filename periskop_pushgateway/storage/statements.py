"""The SQL statements of the store, built once at import: building them for every push cost a
third of its time. Plain SQLAlchemy Core; what differs between databases is in engines.py. Those
every push runs are DriverStatements (driver_sql.py), run on the driver's cursor."""

from typing import Any

from sqlalchemy import (
    BindParameter,
    FromClause,
    Join,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from .driver_sql import DriverStatement
from .models import aggregates, groups, occurrences, process_counters

GROUP_FOR_UPDATE = DriverStatement(
    select(groups.c.id, groups.c.last_push_ns, groups.c.occurrence_bytes)
    .where(groups.c.name == bindparam("name"))
    # Pushes to one group are applied one after the other. SQLite renders no FOR UPDATE:
    # its BEGIN IMMEDIATE already serializes all writers.
    .with_for_update()
)
INSERT_GROUP = insert(groups)
# What pruning changes is no push: the group's last push time stays.
BUMP_REVISION = (
    update(groups)
    .where(groups.c.id == bindparam("group_id"))
    .values(revision=groups.c.revision + 1)
)
NAMED_GROUPS = select(func.count()).select_from(groups).where(groups.c.name != "")
TOUCH_GROUP = DriverStatement(
    update(groups).where(groups.c.id == bindparam("group_id")).values(last_push_ns=bindparam("now"))
)
NOTE_REJECTED_PUSH = (
    update(groups)
    .where(groups.c.name == bindparam("group_name"))
    .values(last_rejected_ns=bindparam("now"))
)
# A new revision tells every worker that its rendered export of this group is stale.
BUMP_GROUP = DriverStatement(
    update(groups)
    .where(groups.c.id == bindparam("group_id"))
    .values(
        revision=groups.c.revision + 1,
        last_push_ns=bindparam("now"),
        occurrence_bytes=bindparam("occurrence_bytes"),
    )
)
# The group's oldest stored occurrences, by arrival (the id): a client sets the timestamps,
# and one far in the future must not keep its occurrences from ever being the oldest.
OLDEST_OCCURRENCES = (
    select(occurrences.c.id, occurrences.c.body_bytes)
    .select_from(occurrences.join(aggregates, aggregates.c.id == occurrences.c.aggregate_id))
    .where(aggregates.c.group_id == bindparam("group_id"))
    .order_by(occurrences.c.id)
    .limit(bindparam("limit"))
)
SHRINK_GROUP_BYTES = (
    update(groups)
    .where(groups.c.id == bindparam("group_id"))
    .values(occurrence_bytes=groups.c.occurrence_bytes - bindparam("freed"))
)
# The stored state of the pushed keys: each key's aggregate and the pushing process's counter
# of it, one row per key.
STATE_COLUMNS = (
    aggregates.c.id,
    aggregates.c.aggregation_key,
    aggregates.c.total_count,
    aggregates.c.severity,
    aggregates.c.created_ns,
    aggregates.c.last_seen_ns,
    aggregates.c.hidden,
    process_counters.c.highest_total,
    process_counters.c.pushed_ns,
)
PUSHED_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)


def with_counter(joined: FromClause) -> Join:
    return joined.outerjoin(
        process_counters,
        and_(
            process_counters.c.aggregate_id == aggregates.c.id,
            process_counters.c.process_id == bindparam("process"),
        ),
    )


STATE_OF_KEYS = DriverStatement(
    select(*STATE_COLUMNS)
    .select_from(with_counter(aggregates))
    .where(
        aggregates.c.group_id == bindparam("group_id"),
        aggregates.c.key_digest.in_(PUSHED_KEYS),
    )
)
# The same with the group found by name (its columns last): a push that changes nothing is
# read in one snapshot. The group's row comes back even when none of the keys is stored.
GROUP_AND_STATE_OF_KEYS = DriverStatement(
    select(*STATE_COLUMNS, groups.c.id.label("group_id"), groups.c.last_push_ns)
    .select_from(
        with_counter(
            groups.outerjoin(
                aggregates,
                and_(
                    aggregates.c.group_id == groups.c.id,
                    aggregates.c.key_digest.in_(PUSHED_KEYS),
                ),
            )
        )
    )
    .where(groups.c.name == bindparam("name"))
)
# Their stored occurrences, apart: joined to the rows above, each occurrence's row repeated its
# aggregate's columns, and reading them took several times as long as reading them alone.
# First their uuids alone (with the aggregate's id and their own, the first columns of
# STORED_OCCURRENCES): SQLite reads them from the unique index on (aggregate_id, uuid) without
# visiting the table's rows, which hold each occurrence's text. A push that brings nothing
# new needs no more.
_OF_AGGREGATES = occurrences.c.aggregate_id.in_(bindparam("aggregate_ids", expanding=True))
STORED_UUIDS = DriverStatement(
    select(occurrences.c.aggregate_id, occurrences.c.id, occurrences.c.uuid).where(_OF_AGGREGATES)
)
STORED_OCCURRENCES = DriverStatement(
    select(
        occurrences.c.aggregate_id,
        occurrences.c.id,
        occurrences.c.uuid,
        occurrences.c.timestamp_ns,
        occurrences.c.body_bytes,
    ).where(_OF_AGGREGATES)
)
INSERT_AGGREGATES = insert(aggregates).returning(aggregates.c.id, sort_by_parameter_order=True)
UPDATE_AGGREGATE = DriverStatement(
    update(aggregates)
    .where(aggregates.c.id == bindparam("_id"))
    .values(
        total_count=bindparam("_total_count"),
        severity=bindparam("_severity"),
        created_ns=bindparam("_created_ns"),
        last_seen_ns=bindparam("_last_seen_ns"),
        hidden=bindparam("_hidden"),
    )
)
INSERT_OCCURRENCES = DriverStatement(insert(occurrences))
DELETE_OCCURRENCES = occurrences.delete().where(
    occurrences.c.id.in_(bindparam("ids", expanding=True))
)
INSERT_COUNTERS = DriverStatement(insert(process_counters))
UPDATE_COUNTER = DriverStatement(
    update(process_counters)
    .where(
        process_counters.c.aggregate_id == bindparam("_id"),
        process_counters.c.process_id == bindparam("_process"),
    )
    .values(highest_total=bindparam("_highest"), pushed_ns=bindparam("_now"))
)
GROUP_BY_NAME = select(
    groups.c.id, groups.c.target_uuid, groups.c.created_ns, groups.c.revision, groups.c.last_push_ns
).where(groups.c.name == bindparam("name"))
# What a group's cached export is named by (export_cache.py): id, creation time, revision.
GROUP_VERSION = DriverStatement(
    select(groups.c.id, groups.c.created_ns, groups.c.revision).where(
        groups.c.name == bindparam("name")
    )
)
# One statement, so that even under READ COMMITTED (PostgreSQL) an export is one snapshot.
EXPORTED = (
    select(
        aggregates.c.id,
        aggregates.c.aggregation_key,
        aggregates.c.total_count,
        aggregates.c.severity,
        aggregates.c.created_ns,
        occurrences.c.body,
    )
    .select_from(aggregates.outerjoin(occurrences, occurrences.c.aggregate_id == aggregates.c.id))
    .where(aggregates.c.group_id == bindparam("group_id"), aggregates.c.hidden.is_(False))
    .order_by(aggregates.c.aggregation_key, occurrences.c.timestamp_ns, occurrences.c.id)
)
VISIBLE_KEYS = DriverStatement(
    select(func.count()).where(
        aggregates.c.group_id == bindparam("group_id"), aggregates.c.hidden.is_(False)
    )
)
