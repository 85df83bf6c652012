"""Keeping what is stored bounded, in short write transactions: aggregates past retention leave
the export, each group keeps at most MAX_COUNTERS_PER_GROUP per-process counters (the least
recently pushed go first), and at most MAX_KEYS_PER_GROUP hidden aggregates (the oldest go);
a group that exports nothing and was not pushed to for the retention period is deleted.

Each step works in batches of at most BATCH_ROWS rows, one transaction each, so that however
large the backlog (a lowered limit, months without a prune) no push waits behind pruning for
longer than one batch takes. Every batch locks the rows of the groups it touches, in id order,
before anything else, as a push locks its group's row first: the two never wait on each other
in a circle (PostgreSQL). On a full disk each batch may take the disk reserve
(Store.run_freeing_write): hiding expired keys comes first, as what it hides is deleted later."""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Executable, bindparam, exists, func, select, tuple_, update

from .models import aggregates, groups, occurrences, process_counters
from .statements import BUMP_REVISION, SHRINK_GROUP_BYTES

if TYPE_CHECKING:
    from .store import Store

BATCH_ROWS = 1000
# Between two batches pruning lets go of the write lock for this long: a push waiting for it
# looks again within a millisecond (db.WriteLock), and would otherwise lose the lock to the
# next batch every time and wait for the whole backlog.
PAUSE_BETWEEN_BATCHES_S = 0.005
# Deleting a hidden aggregate deletes its occurrences and counters too: fewer per batch.
AGGREGATE_BATCH = 100
# Counters are evicted in batches sized to take about this long, within these bounds: short
# enough that no request waits long behind one, large enough to outpace a flood of pushes.
COUNTER_BATCH_S = 0.05
COUNTER_BATCH_ROWS = (BATCH_ROWS, 20 * BATCH_ROWS)
# Counters added while they were evicted are evicted in the same prune, this many times over.
COUNTER_PASSES = 10

_LOCK_GROUPS = (
    select(groups.c.id)
    .where(groups.c.id.in_(bindparam("group_ids", expanding=True)))
    .order_by(groups.c.id)
    .with_for_update()
)


def prune(store: "Store", now: int) -> dict[str, int]:
    """Run every step until nothing is left to do; returns how many rows each touched. What
    there is to do is read first, without the write lock: mostly there is nothing."""
    settings = store.settings
    pruned = {
        "expired_aggregates": 0,
        "evicted_counters": 0,
        "evicted_aggregates": 0,
        "deleted_groups": 0,
    }
    cutoff = now - settings.retention_ns
    if settings.retention_ns and store.read_snapshot(
        lambda connection: connection.execute(_ANY_EXPIRED, {"cutoff": cutoff}).first()
    ):
        while True:
            hidden = store.run_freeing_write(lambda connection: _expire_batch(connection, cutoff))
            pruned["expired_aggregates"] += hidden
            if hidden < BATCH_ROWS:
                break
            time.sleep(PAUSE_BETWEEN_BATCHES_S)
    for _ in range(COUNTER_PASSES):
        counters_over = store.read_snapshot(
            lambda connection: _groups_over(
                connection, _COUNTERS_PER_GROUP, settings.max_counters_per_group
            )
        )
        evicted = sum(
            _drain(
                store,
                excess,
                BATCH_ROWS,
                lambda c, n, g=group_id: _evict_counters(c, g, n),  # type: ignore[misc]
                timed=COUNTER_BATCH_ROWS,
            )
            for group_id, excess in counters_over
        )
        pruned["evicted_counters"] += evicted
        if not evicted:
            break
    hidden_over = store.read_snapshot(
        lambda connection: _groups_over(connection, _HIDDEN_PER_GROUP, settings.max_keys_per_group)
    )
    for group_id, excess in hidden_over:
        pruned["evicted_aggregates"] += _drain(
            store,
            excess,
            AGGREGATE_BATCH,
            lambda c, n, g=group_id: _evict_hidden(c, g, n),  # type: ignore[misc]
        )
    if settings.retention_ns:
        abandoned = store.read_snapshot(
            lambda connection: (
                connection.execute(_ABANDONED_GROUPS, {"cutoff": cutoff}).scalars().all()
            )
        )
        for group_id in abandoned:
            pruned["evicted_aggregates"] += _drain(
                store,
                _ALL,
                AGGREGATE_BATCH,
                lambda c, n, g=group_id: _evict_hidden(c, g, n),  # type: ignore[misc]
            )
            pruned["deleted_groups"] += store.run_freeing_write(
                lambda connection, g=group_id: _delete_group_if_abandoned(connection, g, cutoff)  # type: ignore[misc]
            )
    return pruned


# A group that exports nothing and was not pushed to for the retention period is deleted,
# with what it keeps hidden, so that abandoned groups do not hold MAX_GROUPS. The default
# group stays: it holds the gateway's own reports. A push to the name later makes a new group,
# with a new target_uuid, which the Periskop server counts afresh.
_ABANDONED_GROUPS = select(groups.c.id).where(
    groups.c.name != "",
    groups.c.last_push_ns < bindparam("cutoff"),
    ~exists().where(aggregates.c.group_id == groups.c.id, aggregates.c.hidden.is_(False)),
)
_ALL = 2**62


def _delete_group_if_abandoned(connection: Connection, group_id: int, cutoff: int) -> int:
    connection.execute(_LOCK_GROUPS, {"group_ids": [group_id]}).all()
    return connection.execute(
        groups.delete().where(
            groups.c.id == group_id,
            groups.c.last_push_ns < cutoff,
            ~exists().where(aggregates.c.group_id == groups.c.id),
        )
    ).rowcount


_ANY_EXPIRED = (
    select(aggregates.c.id)
    .where(aggregates.c.hidden.is_(False), aggregates.c.last_seen_ns < bindparam("cutoff"))
    .limit(1)
)


def _expire_batch(connection: Connection, cutoff: int) -> int:
    expired = connection.execute(
        select(aggregates.c.id, aggregates.c.group_id)
        .where(aggregates.c.hidden.is_(False), aggregates.c.last_seen_ns < cutoff)
        .limit(BATCH_ROWS)
    ).all()
    if not expired:
        return 0
    group_ids = sorted({row.group_id for row in expired})
    connection.execute(_LOCK_GROUPS, {"group_ids": group_ids}).all()
    # Seen again under the lock: a push may have brought one back meanwhile (PostgreSQL).
    connection.execute(
        update(aggregates)
        .where(
            aggregates.c.id.in_([row.id for row in expired]),
            aggregates.c.last_seen_ns < cutoff,
        )
        .values(hidden=True)
    )
    connection.execute(BUMP_REVISION, [{"group_id": gid} for gid in group_ids])
    return len(expired)


_COUNTERS_PER_GROUP = (
    select(process_counters.c.group_id, func.count())
    .group_by(process_counters.c.group_id)
    .having(func.count() > bindparam("keep"))
)
_HIDDEN_PER_GROUP = (
    select(aggregates.c.group_id, func.count())
    .where(aggregates.c.hidden.is_(True))
    .group_by(aggregates.c.group_id)
    .having(func.count() > bindparam("keep"))
)


def _groups_over(
    connection: Connection, counted_per_group: Executable, keep: int
) -> list[tuple[int, int]]:
    """(group id, rows beyond `keep`) of every group holding more."""
    rows = connection.execute(counted_per_group, {"keep": keep}).all()
    return [(group_id, total - keep) for group_id, total in rows]


def _drain(
    store: "Store",
    excess: int,
    batch: int,
    evict: Callable[[Connection, int], int],
    timed: tuple[int, int] | None = None,
) -> int:
    """evict(connection, at most n) in batches until `excess` rows are gone or none is left.
    timed=(smallest, largest): each batch sized to take about COUNTER_BATCH_S by the last one's
    own time (not its wait for the write lock, which pushes hold in turns)."""
    done = 0
    took = [0.0]

    def evict_timed(connection: Connection, limit: int) -> int:
        started = time.monotonic()
        evicted = evict(connection, limit)
        took[0] = time.monotonic() - started
        return evicted

    while done < excess:
        if done:
            time.sleep(PAUSE_BETWEEN_BATCHES_S)
        limit = min(batch, excess - done)
        evicted = store.run_freeing_write(
            lambda connection, limit=limit: evict_timed(connection, limit)  # type: ignore[misc]
        )
        if not evicted:
            break
        done += evicted
        if timed is not None and evicted == limit:
            rate = limit * COUNTER_BATCH_S / max(took[0], 0.001)
            batch = max(timed[0], min(timed[1], int(rate)))
    return done


def _evict_counters(connection: Connection, group_id: int, limit: int) -> int:
    """Delete the group's `limit` least recently pushed counters.

    A process whose counter is gone is counted whole again if it pushes the key once more:
    the one case where a re-pushed cumulative state adds again. The least recently pushed go
    first, so it takes MAX_COUNTERS_PER_GROUP other (process, key) pairs pushing to the group
    since that process last pushed.
    """
    connection.execute(_LOCK_GROUPS, {"group_ids": [group_id]}).all()
    oldest = (
        select(process_counters.c.aggregate_id, process_counters.c.process_id)
        .where(process_counters.c.group_id == group_id)
        .order_by(process_counters.c.pushed_ns)
        .limit(limit)
    )
    return connection.execute(
        process_counters.delete().where(
            tuple_(process_counters.c.aggregate_id, process_counters.c.process_id).in_(oldest)
        )
    ).rowcount


def _evict_hidden(connection: Connection, group_id: int, limit: int) -> int:
    """Delete the group's `limit` hidden aggregates hidden longest, with what belongs to them.

    A deleted key that comes back starts counting from zero: the one case where an exported
    count can go down for a standing target_uuid, and only for keys hidden longest in a group
    that holds its maximum of keys.
    """
    connection.execute(_LOCK_GROUPS, {"group_ids": [group_id]}).all()
    doomed = list(
        connection.execute(
            select(aggregates.c.id)
            .where(aggregates.c.group_id == group_id, aggregates.c.hidden.is_(True))
            .order_by(aggregates.c.last_seen_ns)
            .limit(limit)
        ).scalars()
    )
    if doomed:
        freed = connection.execute(
            select(func.coalesce(func.sum(occurrences.c.body_bytes), 0)).where(
                occurrences.c.aggregate_id.in_(doomed)
            )
        ).scalar_one()
        connection.execute(SHRINK_GROUP_BYTES, {"group_id": group_id, "freed": freed})
        connection.execute(occurrences.delete().where(occurrences.c.aggregate_id.in_(doomed)))
        connection.execute(
            process_counters.delete().where(process_counters.c.aggregate_id.in_(doomed))
        )
        connection.execute(aggregates.delete().where(aggregates.c.id.in_(doomed)))
    return len(doomed)
