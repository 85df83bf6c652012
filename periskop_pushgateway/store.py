"""All reading and writing of error aggregates: where a push is counted, and where the export
is read. Plain SQLAlchemy Core, one transaction per push, a fixed number of statements
whatever the size of the push."""

import logging
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from .db import database_size, snapshot_options, write_lock_for
from .models import aggregates, client_counters, groups, occurrences
from .render import render_export
from .timestamps import now_ns

log = logging.getLogger(__name__)

# A transaction aborted by a deadlock or serialization failure is run again, this often.
_WRITE_ATTEMPTS = 3
# SQLSTATEs of those aborts: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = ("40001", "40P01")

# Largest count a 64-bit column (and the Periskop server's int64) holds.
MAX_TOTAL = 2**63 - 1

# The target_uuid exported for a group nothing was ever pushed to. It is replaced by a random
# one when the first push creates the group: the Periskop server then sees a new target,
# which is right, as the empty one had no counts.
_EMPTY_GROUP_NAMESPACE = uuid.UUID("4f7f3c1e-2b8e-4d0c-9a55-6a1d2f3b8c90")

# A push that changes nothing writes nothing (no fsync), except to keep these two times
# roughly current: when the group was last pushed to, and when a process last pushed its
# counters (so that counters of processes long gone can be told apart).
_GROUP_TOUCH_NS = 60 * 10**9
_COUNTER_TOUCH_NS = 5 * 60 * 10**9

# Statements are built once: building them for every push cost a third of its time.
_GROUP_FOR_UPDATE = (
    select(groups.c.id, groups.c.last_push_ns)
    .where(groups.c.name == bindparam("name"))
    # Pushes to one group are applied one after the other. SQLite renders no FOR UPDATE:
    # its BEGIN IMMEDIATE already serializes all writers.
    .with_for_update()
)
_INSERT_GROUP = insert(groups)
_ALL_GROUPS_FOR_UPDATE = select(groups.c.id).order_by(groups.c.id).with_for_update()
_TOUCH_GROUP = (
    update(groups).where(groups.c.id == bindparam("group_id")).values(last_push_ns=bindparam("now"))
)
# A new revision tells every worker that its rendered export of this group is stale.
_BUMP_GROUP = (
    update(groups)
    .where(groups.c.id == bindparam("group_id"))
    .values(revision=groups.c.revision + 1, last_push_ns=bindparam("now"))
)
# The stored state of the pushed keys in one statement: each key's aggregate, the pushing
# process's counter of it, and its stored occurrences, one row per occurrence (a key with none
# has one row, its occurrence columns null).
_STATE_COLUMNS = (
    aggregates.c.id,
    aggregates.c.aggregation_key,
    aggregates.c.total_count,
    aggregates.c.severity,
    aggregates.c.created_ns,
    aggregates.c.last_seen_ns,
    aggregates.c.hidden,
    client_counters.c.last_total,
    client_counters.c.updated_ns,
    occurrences.c.id.label("occurrence_id"),
    occurrences.c.uuid.label("occurrence_uuid"),
    occurrences.c.timestamp_ns.label("occurrence_timestamp_ns"),
)
_PUSHED_KEYS = bindparam("keys", expanding=True)


def _with_counters_and_occurrences(joined):
    return joined.outerjoin(
        client_counters,
        and_(
            client_counters.c.aggregate_id == aggregates.c.id,
            client_counters.c.client_uuid == bindparam("client"),
        ),
    ).outerjoin(occurrences, occurrences.c.aggregate_id == aggregates.c.id)


_STATE_OF_KEYS = (
    select(*_STATE_COLUMNS)
    .select_from(_with_counters_and_occurrences(aggregates))
    .where(
        aggregates.c.group_id == bindparam("group_id"),
        aggregates.c.aggregation_key.in_(_PUSHED_KEYS),
    )
)
# The same with the group found by name (its columns last): a push that changes nothing is
# read in one statement. The group's row comes back even when none of the keys is stored.
_GROUP_AND_STATE_OF_KEYS = (
    select(*_STATE_COLUMNS, groups.c.id.label("group_id"), groups.c.last_push_ns)
    .select_from(
        _with_counters_and_occurrences(
            groups.outerjoin(
                aggregates,
                and_(
                    aggregates.c.group_id == groups.c.id,
                    aggregates.c.aggregation_key.in_(_PUSHED_KEYS),
                ),
            )
        )
    )
    .where(groups.c.name == bindparam("name"))
)
_INSERT_AGGREGATES = insert(aggregates).returning(aggregates.c.id, sort_by_parameter_order=True)
_UPDATE_AGGREGATE = (
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
_INSERT_OCCURRENCES = insert(occurrences)
_DELETE_OCCURRENCES = occurrences.delete().where(
    occurrences.c.id.in_(bindparam("ids", expanding=True))
)
_INSERT_COUNTERS = insert(client_counters)
_UPDATE_COUNTER = (
    update(client_counters)
    .where(
        client_counters.c.aggregate_id == bindparam("_id"),
        client_counters.c.client_uuid == bindparam("_client"),
    )
    .values(last_total=bindparam("_total"), updated_ns=bindparam("_now"))
)
_GROUP_BY_NAME = select(
    groups.c.id, groups.c.target_uuid, groups.c.revision, groups.c.last_push_ns
).where(groups.c.name == bindparam("name"))
# One statement, so that even under READ COMMITTED (PostgreSQL) an export is one snapshot.
_EXPORTED = (
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
_VISIBLE_KEYS = select(func.count()).where(
    aggregates.c.group_id == bindparam("group_id"), aggregates.c.hidden.is_(False)
)


@dataclass
class PushSummary:
    """What a push changed: the response body of POST /errors."""

    aggregates: int = 0
    new_occurrences: int = 0
    count_increase: int = 0
    # New keys not stored because the group holds its maximum of keys.
    dropped_keys: int = 0


class _StoredOccurrence(NamedTuple):
    id: int
    uuid: str
    timestamp_ns: int


@dataclass
class _AggregateState:
    """One aggregation key of the group while a push is applied to it."""

    id: int | None
    total_count: int
    severity: str
    created_ns: int
    last_seen_ns: int
    hidden: bool = False
    # The pushing process's counter for this key, as stored before this push.
    last_total: int | None = None
    counter_updated_ns: int | None = None
    # What is stored of its occurrences: _StoredOccurrence tuples.
    stored_occurrences: list = field(default_factory=list)
    changed: bool = False
    pushed_occurrences: dict = field(default_factory=dict)
    occurrences_to_insert: list = field(default_factory=list)
    occurrence_ids_to_delete: list = field(default_factory=list)


@dataclass(frozen=True)
class StoreSettings:
    occurrences_per_key: int = 10
    # New keys past this many exported ones in a group are not stored.
    max_keys_per_group: int = 5000
    # Aggregates unchanged for this long leave the export (0: never).
    retention_ns: int = 7 * 86400 * 10**9
    # A process's counters are forgotten this long after it last pushed them.
    counter_ttl_ns: int = 86400 * 10**9

    @classmethod
    def from_config(cls, config):
        return cls(
            occurrences_per_key=config["OCCURRENCES_PER_KEY"],
            max_keys_per_group=config["MAX_KEYS_PER_GROUP"],
            retention_ns=config["RETENTION_SECONDS"] * 10**9,
            counter_ttl_ns=config["CLIENT_COUNTER_TTL_SECONDS"] * 10**9,
        )


class Store:
    def __init__(self, engine, write_engine, settings=StoreSettings(), clock=now_ns):
        self.engine = engine
        self._write_engine = write_engine
        self._write_lock = write_lock_for(write_engine)
        self.settings = settings
        # Nanoseconds since the epoch; tests move it to simulate days passing.
        self.clock = clock
        # group name -> ((group id, revision), export body): a worker renders a group's
        # export again only after a push changed it.
        self._exports = {}

    def _run_write(self, apply):
        """apply(connection) in a write transaction, run again when the database aborted it to
        break a deadlock or a serialization conflict with another instance (PostgreSQL):
        nothing of it was applied, so running it again is safe."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._write_lock(), self._write_engine.begin() as connection:
                    return apply(connection)
            except DBAPIError as error:
                if attempt == _WRITE_ATTEMPTS or not _is_transient(error):
                    raise
                log.warning("transaction aborted (%s); trying again", error.orig)
        raise AssertionError("unreachable")

    def healthy(self):
        with self.engine.connect() as connection:
            connection.execute(select(groups.c.id).limit(1)).all()
        return True

    def ingest(self, group_name, push, capped=True, repeated=False):
        """Apply one normalized push (normalize.normalize_push) to a group, atomically.

        capped=False stores new keys past the group's maximum (the gateway's own reports).
        repeated=True: the same body was pushed lately, so the push probably changes nothing,
        which a read transaction finds out without waiting for the write lock.
        """
        now = self.clock()
        client = push["target_uuid"]
        keys = list(dict.fromkeys(aggregate["aggregation_key"] for aggregate in push["aggregates"]))

        def plan(connection, group_id, stored_rows):
            """The push applied to the group's stored state (stored_rows: the pushed keys' rows
            of _STATE_OF_KEYS), in memory: (states, pushed keys' aggregates, summary)."""
            pushed = push["aggregates"]
            states = _states_of_keys(stored_rows, pushed)
            dropped = set()
            if capped:
                dropped = _keys_over_cap(connection, group_id, states, self.settings)
                pushed = [a for a in pushed if a["aggregation_key"] not in dropped]
                for key in dropped:
                    del states[key]
            increase = _count(pushed, states, bool(client), now)
            new_occurrences = _merge_occurrences(states, self.settings.occurrences_per_key, now)
            return states, pushed, PushSummary(len(states), new_occurrences, increase, len(dropped))

        def summary_if_unchanged(connection):
            rows = connection.execute(
                _GROUP_AND_STATE_OF_KEYS, {"name": group_name, "client": client, "keys": keys}
            ).all()
            if not rows or now - rows[0].last_push_ns > _GROUP_TOUCH_NS:
                return None
            states, pushed, summary = plan(connection, rows[0].group_id, rows)
            if any(state.changed for state in states.values()):
                return None
            if client and any(_counter_rows(client, pushed, states, now)):
                return None
            return summary

        # A push that changes nothing (the same state pushed again) is found out in a read
        # transaction, which takes no write lock: repeated pushes do not queue behind writes.
        # Any other push goes straight to the write transaction, which finds out the same.
        # An anonymous push with a count adds it, so it always writes.
        adds_counts = not client and any(a["total_count"] for a in push["aggregates"])
        if repeated and not adds_counts:
            summary = self._read_snapshot(summary_if_unchanged)
            if summary is not None:
                return summary

        def apply(connection):
            group_id, last_push_ns = _lock_group(connection, group_name, now)
            stored_rows = ()
            if keys:
                stored_rows = connection.execute(
                    _STATE_OF_KEYS, {"group_id": group_id, "client": client, "keys": keys}
                )
            states, pushed, summary = plan(connection, group_id, stored_rows)
            if any(state.changed for state in states.values()):
                _save_aggregates(connection, group_id, states)
                _save_occurrences(connection, states)
                connection.execute(_BUMP_GROUP, {"group_id": group_id, "now": now})
            elif now - last_push_ns > _GROUP_TOUCH_NS:
                connection.execute(_TOUCH_GROUP, {"group_id": group_id, "now": now})
            if client:
                _save_counters(connection, client, pushed, states, now)
            return summary

        return self._run_write(apply)

    def _read_snapshot(self, read):
        """read(connection) in a read-only transaction that sees one snapshot throughout."""
        with self.engine.connect() as connection:
            connection.execution_options(**snapshot_options(connection))
            with connection.begin():
                return read(connection)

    def export(self, group_name):
        """The group's export body (bytes), read in one snapshot."""
        with self.engine.connect() as connection, connection.begin():
            group = connection.execute(_GROUP_BY_NAME, {"name": group_name}).first()
            if group is None:
                return render_export(str(uuid.uuid5(_EMPTY_GROUP_NAMESPACE, group_name)), [])
            version = (group.id, group.revision)
            cached = self._exports.get(group_name)
            if cached is not None and cached[0] == version:
                return cached[1]
            exported = {}  # aggregate id -> [key, count, severity, created, [bodies]]
            for row in connection.execute(_EXPORTED, {"group_id": group.id}):
                aggregate = exported.get(row.id)
                if aggregate is None:
                    aggregate = exported[row.id] = (
                        row.aggregation_key,
                        row.total_count,
                        row.severity,
                        row.created_ns,
                        [],
                    )
                if row.body is not None:
                    aggregate[4].append(row.body)
        body = render_export(group.target_uuid, list(exported.values()))
        self._exports[group_name] = (version, body)
        return body

    def resolve(self, group_name, aggregation_key):
        """Take one error out of the export; its count is kept, so if it comes back the
        Periskop server sees it continue. Returns False when no such error is exported."""
        now = self.clock()

        def apply(connection):
            group = connection.execute(_GROUP_FOR_UPDATE, {"name": group_name}).first()
            if group is None:
                return False
            aggregate_id = connection.execute(
                select(aggregates.c.id).where(
                    aggregates.c.group_id == group.id,
                    aggregates.c.aggregation_key == aggregation_key,
                    aggregates.c.hidden.is_(False),
                )
            ).scalar()
            if aggregate_id is None:
                return False
            _hide(connection, [aggregate_id])
            connection.execute(_BUMP_GROUP, {"group_id": group.id, "now": now})
            return True

        return self._run_write(apply)

    def wipe(self, group_name):
        """Remove everything in a group and give it a new target_uuid, so the Periskop server
        starts counting afresh instead of seeing counts go down. Returns the new uuid, or None
        when the group does not exist."""
        now = self.clock()
        new_uuid = str(uuid.uuid4())

        def apply(connection):
            group = connection.execute(_GROUP_FOR_UPDATE, {"name": group_name}).first()
            if group is None:
                return None
            in_group = select(aggregates.c.id).where(aggregates.c.group_id == group.id)
            connection.execute(occurrences.delete().where(occurrences.c.aggregate_id.in_(in_group)))
            connection.execute(
                client_counters.delete().where(client_counters.c.aggregate_id.in_(in_group))
            )
            connection.execute(aggregates.delete().where(aggregates.c.group_id == group.id))
            connection.execute(
                update(groups)
                .where(groups.c.id == group.id)
                .values(target_uuid=new_uuid, revision=groups.c.revision + 1, last_push_ns=now)
            )
            return new_uuid

        return self._run_write(apply)

    def prune(self):
        """Bound what is stored: expire aggregates past retention, forget counters of processes
        that stopped pushing, and keep each group's hidden aggregates to its maximum of keys.
        Returns how many rows each step touched."""
        now = self.clock()
        settings = self.settings
        pruned = {"expired_aggregates": 0, "forgotten_counters": 0, "evicted_aggregates": 0}

        def apply(connection):
            # Pushes lock their group's row first; pruning takes them all, in one order,
            # before touching any aggregate, so the two never wait on each other in a circle.
            connection.execute(_ALL_GROUPS_FOR_UPDATE).all()
            if settings.retention_ns:
                expired = connection.execute(
                    select(aggregates.c.id, aggregates.c.group_id).where(
                        aggregates.c.hidden.is_(False),
                        aggregates.c.last_seen_ns < now - settings.retention_ns,
                    )
                ).all()
                if expired:
                    _hide(connection, [row.id for row in expired])
                    connection.execute(
                        _BUMP_GROUP,
                        [
                            {"group_id": gid, "now": now}
                            for gid in {row.group_id for row in expired}
                        ],
                    )
                pruned["expired_aggregates"] = len(expired)
            pruned["forgotten_counters"] = connection.execute(
                client_counters.delete().where(
                    client_counters.c.updated_ns < now - settings.counter_ttl_ns
                )
            ).rowcount
            pruned["evicted_aggregates"] = _evict_hidden(connection, settings.max_keys_per_group)
            return pruned

        return self._run_write(apply)

    def status(self):
        """Groups with their key counts and last push, and the database's size."""
        with self.engine.connect() as connection, connection.begin():
            keys = (
                select(
                    aggregates.c.group_id,
                    func.count().label("stored"),
                    func.count().filter(aggregates.c.hidden.is_(False)).label("exported"),
                )
                .group_by(aggregates.c.group_id)
                .subquery()
            )
            rows = connection.execute(
                select(
                    groups.c.name,
                    groups.c.target_uuid,
                    groups.c.last_push_ns,
                    func.coalesce(keys.c.exported, 0).label("exported"),
                    func.coalesce(keys.c.stored, 0).label("stored"),
                )
                .select_from(groups.outerjoin(keys, keys.c.group_id == groups.c.id))
                .order_by(groups.c.name)
            ).all()
            size = database_size(connection)
        return rows, size


def _is_transient(error):
    return getattr(error.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _hide(connection, aggregate_ids):
    """Take aggregates out of the export. Their counts stay, and so do their occurrences: a
    client re-pushing the same cumulative state must not bring a resolved error back, and
    only known uuids tell that it is the same."""
    connection.execute(
        update(aggregates).where(aggregates.c.id.in_(aggregate_ids)).values(hidden=True)
    )


def _evict_hidden(connection, keep):
    """Delete the oldest hidden aggregates of each group beyond `keep` of them.

    A deleted key that comes back starts counting from zero: the one case where an exported
    count can go down for a standing target_uuid, and only for keys hidden longest in a group
    that holds its maximum of keys.
    """
    ranked = (
        select(
            aggregates.c.id,
            func.row_number()
            .over(partition_by=aggregates.c.group_id, order_by=aggregates.c.last_seen_ns.desc())
            .label("rank"),
        )
        .where(aggregates.c.hidden.is_(True))
        .subquery()
    )
    doomed = [row.id for row in connection.execute(select(ranked.c.id).where(ranked.c.rank > keep))]
    if doomed:
        connection.execute(occurrences.delete().where(occurrences.c.aggregate_id.in_(doomed)))
        connection.execute(
            client_counters.delete().where(client_counters.c.aggregate_id.in_(doomed))
        )
        connection.execute(aggregates.delete().where(aggregates.c.id.in_(doomed)))
    return len(doomed)


def _lock_group(connection, name, now):
    """Create the group if needed and lock its row until the transaction ends; returns its id
    and when it was last pushed to."""
    row = connection.execute(_GROUP_FOR_UPDATE, {"name": name}).first()
    if row is not None:
        return row
    try:
        with connection.begin_nested():
            connection.execute(
                _INSERT_GROUP,
                {
                    "name": name,
                    "target_uuid": str(uuid.uuid4()),
                    "revision": 0,
                    "created_ns": now,
                    "last_push_ns": now,
                },
            )
    except IntegrityError:
        pass  # another gateway instance created it first
    return connection.execute(_GROUP_FOR_UPDATE, {"name": name}).one()


def _states_of_keys(stored_rows, pushed):
    """Every pushed key's state: as stored (rows of _STATE_OF_KEYS), or new."""
    states = {}
    for row in stored_rows:
        # Unpacked by position: it takes less than half the time of reading columns by name.
        (aggregate_id, key, total, severity, created, last_seen, hidden, last_total, updated,
         occurrence_id, occurrence_uuid, occurrence_timestamp, *_group_columns) = row  # fmt: skip
        if aggregate_id is None:
            continue  # the group's own row, when none of the pushed keys is stored
        state = states.get(key)
        if state is None:
            state = states[key] = _AggregateState(
                aggregate_id,
                total,
                severity,
                created,
                last_seen,
                hidden=hidden,
                last_total=last_total,
                counter_updated_ns=updated,
            )
        if occurrence_id is not None:
            state.stored_occurrences.append(
                _StoredOccurrence(occurrence_id, occurrence_uuid, occurrence_timestamp)
            )
    for aggregate in pushed:
        key = aggregate["aggregation_key"]
        if key not in states:
            states[key] = _AggregateState(
                None, 0, aggregate["severity"], aggregate["created_ns"], 0, changed=True
            )
    return states


def _keys_over_cap(connection, group_id, states, settings):
    """The new keys of this push that would take the group past its maximum of exported keys
    (the last ones pushed)."""
    new_keys = [key for key, state in states.items() if state.id is None]
    if not new_keys:
        return set()
    visible = connection.execute(_VISIBLE_KEYS, {"group_id": group_id}).scalar_one()
    room = max(0, settings.max_keys_per_group - visible)
    return set(new_keys[room:])


def _count(pushed, states, identified, now):
    """Add each pushed total_count's increase to its aggregate; return the sum of increases.

    A process identified by target_uuid pushes its cumulative count: only the part above what
    it pushed last is new. A count lower than last time means the process restarted, so all
    of it is new. An anonymous push adds its count as it is.
    """
    last_totals = {key: state.last_total for key, state in states.items()} if identified else {}
    increase = 0
    for aggregate in pushed:
        key = aggregate["aggregation_key"]
        state = states[key]
        total = aggregate["total_count"]
        last = last_totals.get(key)
        delta = total - last if last is not None and total >= last else total
        if identified:
            last_totals[key] = total
        if delta and state.total_count < MAX_TOTAL:
            # Saturates rather than overflowing the 64-bit column: a count never goes down.
            state.total_count = min(state.total_count + delta, MAX_TOTAL)
            state.last_seen_ns = now
            state.hidden = False  # a resolved or expired error that happens again is back
            state.changed = True
            increase += delta
        if aggregate["severity"] != state.severity:
            state.severity = aggregate["severity"]
            state.changed = True
        if aggregate["created_ns"] < state.created_ns:
            state.created_ns = aggregate["created_ns"]
            state.changed = True
        for occurrence in aggregate["occurrences"]:
            state.pushed_occurrences.setdefault(occurrence["uuid"], occurrence)
    return increase


def _merge_occurrences(states, per_key, now):
    """Plan each aggregate's newest `per_key` occurrences, de-duplicated by uuid.

    Sets each state's occurrences to insert and stored ids to delete; returns how many pushed
    occurrences will be stored.
    """
    new_occurrences = 0
    for state in states.values():
        if not state.pushed_occurrences:
            continue
        rows = state.stored_occurrences
        known = {row.uuid for row in rows}
        # Newest first; among equal timestamps, what was stored stays ahead of what is pushed.
        candidates = [((row.timestamp_ns, 1, row.id), row.id, None) for row in rows]
        candidates += [
            ((occurrence["timestamp_ns"], 0, -arrival), None, occurrence)
            for arrival, (occurrence_uuid, occurrence) in enumerate(
                state.pushed_occurrences.items()
            )
            if occurrence_uuid not in known
        ]
        candidates.sort(key=lambda candidate: candidate[0], reverse=True)
        kept, dropped = candidates[:per_key], candidates[per_key:]
        state.occurrences_to_insert = [pushed for _, _, pushed in kept if pushed is not None]
        state.occurrence_ids_to_delete = [row_id for _, row_id, _ in dropped if row_id is not None]
        if state.occurrences_to_insert:
            state.last_seen_ns = now
            state.hidden = False
            new_occurrences += len(state.occurrences_to_insert)
        if state.occurrences_to_insert or state.occurrence_ids_to_delete:
            state.changed = True
    return new_occurrences


def _save_aggregates(connection, group_id, states):
    new = [(key, state) for key, state in states.items() if state.id is None]
    if new:
        rows = connection.execute(
            _INSERT_AGGREGATES,
            [
                {
                    "group_id": group_id,
                    "aggregation_key": key,
                    "total_count": state.total_count,
                    "severity": state.severity,
                    "created_ns": state.created_ns,
                    "last_seen_ns": state.last_seen_ns,
                }
                for key, state in new
            ],
        )
        for (_key, state), (new_id,) in zip(new, rows, strict=True):
            state.id = new_id
            state.changed = False  # written as it stands
    changed = [state for state in states.values() if state.changed]
    if changed:
        connection.execute(
            _UPDATE_AGGREGATE,
            [
                {
                    "_id": state.id,
                    "_total_count": state.total_count,
                    "_severity": state.severity,
                    "_created_ns": state.created_ns,
                    "_last_seen_ns": state.last_seen_ns,
                    "_hidden": state.hidden,
                }
                for state in changed
            ],
        )


def _save_occurrences(connection, states):
    rows = [
        {
            "aggregate_id": state.id,
            "uuid": occurrence["uuid"],
            "timestamp_ns": occurrence["timestamp_ns"],
            "body": occurrence["body"],
        }
        for state in states.values()
        for occurrence in state.occurrences_to_insert
    ]
    if rows:
        connection.execute(_INSERT_OCCURRENCES, rows)
    doomed = [row_id for state in states.values() for row_id in state.occurrence_ids_to_delete]
    if doomed:
        connection.execute(_DELETE_OCCURRENCES, {"ids": doomed})


def _counter_rows(client, pushed, states, now):
    """The pushing process's counter rows to create and to update: (created, updated)."""
    pushed_totals = {aggregate["aggregation_key"]: aggregate["total_count"] for aggregate in pushed}
    created, updated = [], []
    for key, total in pushed_totals.items():
        state = states[key]
        if state.counter_updated_ns is None:
            created.append(
                {
                    "aggregate_id": state.id,
                    "client_uuid": client,
                    "last_total": total,
                    "updated_ns": now,
                }
            )
        elif total != state.last_total or now - state.counter_updated_ns > _COUNTER_TOUCH_NS:
            updated.append({"_id": state.id, "_client": client, "_total": total, "_now": now})
    return created, updated


def _save_counters(connection, client, pushed, states, now):
    """Remember the pushing process's latest cumulative total of every key it pushed."""
    created, updated = _counter_rows(client, pushed, states, now)
    if created:
        connection.execute(_INSERT_COUNTERS, created)
    if updated:
        connection.execute(_UPDATE_COUNTER, updated)
