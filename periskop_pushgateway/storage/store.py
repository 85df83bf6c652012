"""All reading and writing of error aggregates: where a push is counted, and where the export
is read. Plain SQLAlchemy Core, one transaction per push, a fixed number of statements
whatever the size of the push."""

import contextlib
import gzip
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from io import BufferedReader
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from sqlalchemy import Connection, Float, Row, cast, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from .. import metrics
from ..errors import TooManyGroups
from ..server.large_work import one_at_a_time
from ..wire.render import render_export
from ..wire.timestamps import now_ns
from .budget import DatabaseBudget, delete_oldest_occurrences, used_bytes
from .engines import Database, database_size, snapshot_options
from .export_cache import ExportFileCache
from .group_commit import GroupCommit
from .models import aggregates, groups, occurrences, process_counters
from .planning import (
    AggregateState,
    PushSummary,
    counter_rows,
    counters_current_until,
    key_digest,
    keys_over_cap,
    plan_push,
    process_id,
    render_insertions,
)
from .pruning import prune
from .statements import (
    BUMP_GROUP,
    BUMP_REVISION,
    DELETE_OCCURRENCES,
    EXPORTED,
    GROUP_AND_STATE_OF_KEYS,
    GROUP_BY_NAME,
    GROUP_FOR_UPDATE,
    GROUP_VERSION,
    INSERT_AGGREGATES,
    INSERT_COUNTERS,
    INSERT_GROUP,
    INSERT_OCCURRENCES,
    NAMED_GROUPS,
    NOTE_REJECTED_PUSH,
    STATE_OF_KEYS,
    STORED_OCCURRENCES,
    STORED_UUIDS,
    TOUCH_GROUP,
    UPDATE_AGGREGATE,
    UPDATE_COUNTER,
    VISIBLE_KEYS,
)

if TYPE_CHECKING:
    from .sqlite.engine import DriverConnection

log = logging.getLogger(__name__)

# A transaction aborted by a deadlock or serialization failure is run again, this often.
_WRITE_ATTEMPTS = 3
# SQLSTATEs of those aborts: serialization_failure, deadlock_detected.
_TRANSIENT_SQLSTATES = ("40001", "40P01")

# The target_uuid exported for a group nothing was ever pushed to. It is replaced by a random
# one when the first push creates the group: the Periskop server then sees a new target,
# which is right, as the empty one had no counts.
_EMPTY_GROUP_NAMESPACE = uuid.UUID("4f7f3c1e-2b8e-4d0c-9a55-6a1d2f3b8c90")

# Occurrences read at a time when a group is over MAX_OCCURRENCE_BYTES_PER_GROUP.
_EVICTION_BATCH = 5000

# A push that changes nothing writes nothing (no fsync), except to keep when the group was
# last pushed to roughly current (and its counters', see planning.COUNTER_TOUCH_NS).
_GROUP_TOUCH_NS = 60 * 10**9


class Verdict(NamedTuple):
    """The store's finding that a remembered body changes nothing, and for how long it holds:
    as long as the database shows the same stamp (the backend's DatabaseStamp: nothing committed
    since) and the clock is no later than until_ns."""

    summary: PushSummary
    stamp: int
    until_ns: int


@dataclass(frozen=True)
class StoreSettings:
    """The store's share of the settings (config.py holds their defaults)."""

    occurrences_per_key: int
    # New keys past this many exported ones in a group are not stored.
    max_keys_per_group: int
    # Aggregates unchanged for this long leave the export (0: never).
    retention_ns: int
    # Per-process counters a group keeps; the least recently pushed are evicted beyond it.
    max_counters_per_group: int
    # Groups besides the default one; a push that would create one more is refused.
    max_groups: int
    # Bytes of occurrences a group stores; the oldest stored go beyond it.
    max_occurrence_bytes_per_group: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            occurrences_per_key=config["OCCURRENCES_PER_KEY"],
            max_keys_per_group=config["MAX_KEYS_PER_GROUP"],
            retention_ns=config["RETENTION_SECONDS"] * 10**9,
            max_counters_per_group=config["MAX_COUNTERS_PER_GROUP"],
            max_groups=config["MAX_GROUPS"],
            max_occurrence_bytes_per_group=config["MAX_OCCURRENCE_BYTES_PER_GROUP"],
        )


class Store:
    def __init__(
        self,
        database: Database,
        settings: StoreSettings,
        exports: ExportFileCache,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.engine = database.engine
        self._write_engine = database.write_engine
        # What a write needs besides the engine: SqliteBackend or ServerBackend (engines.py).
        self.backend = database.backend
        self.settings = settings
        # Nanoseconds since the epoch; tests move it to simulate days passing.
        self.clock = clock
        # A group's export is rendered again only after a push changed it (ExportFileCache).
        self.exports = exports
        # SQLite takes one writer at a time: the writes of this worker's threads waiting at
        # the same moment share a transaction and its fsync. PostgreSQL writes concurrently.
        self._group_commit: GroupCommit | None = None
        if self.backend.one_writer:
            self._group_commit = GroupCommit(
                self._write_transaction, metrics.WRITES_PER_COMMIT.observe
            )

    @contextlib.contextmanager
    def _write_transaction(self, free_room: bool = False) -> Iterator[Connection]:
        """A connection in a write transaction, committed when this exits without an
        exception (on disk once flushed: see run_write). free_room: see run_freeing_write."""
        backend = self.backend
        with backend.write_lock():
            if free_room:
                # Before the connection: opening one may need room too (SQLite's -shm file).
                backend.release_disk_reserve()
            if backend.write_connections is None:
                with self._write_engine.begin() as connection:
                    yield connection
                    backend.committing(connection)
            else:
                connection = backend.write_connections()
                room = backend.room_to_free(connection) if free_room else contextlib.nullcontext()
                with room, connection.begin():
                    yield connection
                    backend.committing(connection)
            backend.committed(connection)

    def run_write(self, apply: Callable[[Connection], Any], flush: bool = True) -> Any:
        """apply(connection) in a write transaction, run again when the database aborted it to
        break a deadlock or a serialization conflict with another instance (PostgreSQL):
        nothing of it was applied, so running it again is safe. On SQLite, writes waiting
        together share one transaction (group_commit.py).

        The commit is on disk when this returns, unless flush=False: then the caller calls
        flush() before it acknowledges the write. Under SQLITE_SYNCHRONOUS=FULL the WAL is
        flushed after the write lock is released (wal_sync.py)."""
        result = self._run_write(apply)
        if flush:
            self.flush()
        return result

    def run_freeing_write(self, apply: Callable[[Connection], Any]) -> Any:
        """run_write for a write that frees room (an admin delete, pruning): one that fails
        for a full disk runs again, once, with the disk reserve released under the same hold
        of the write lock (sqlite/disk_reserve.py). Pushes never take this way."""
        try:
            return self.run_write(apply)
        except OperationalError as error:
            if not self.backend.failed_for_room(error):
                raise
        with self._write_transaction(free_room=True) as connection:
            result = apply(connection)
        self.flush()
        return result

    def flush(self) -> None:
        """Make every commit of this process durable; OperationalError when the disk fails."""
        self.backend.wal_sync.flush_commits()

    def unflushed(self) -> bool:
        """Whether a commit of this process may not be on disk yet (flush() makes it so)."""
        return self.backend.wal_sync.unflushed()

    def _run_write(self, apply: Callable[[Connection], Any]) -> Any:
        if self._group_commit is not None:
            return self._group_commit.run(apply)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._write_transaction() as connection:
                    return apply(connection)
            except DBAPIError as error:
                if attempt == _WRITE_ATTEMPTS or not _is_transient(error):
                    raise
                log.warning("transaction aborted (%s); trying again", error.orig)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every connection to the database this process holds: the pool's, the calling
        thread's for writes, the one that reads the database's stamp (each is opened again
        when next needed)."""
        self.backend.close()
        self.engine.dispose()

    def healthy(self) -> bool:
        with self.engine.connect() as connection:
            connection.execute(select(groups.c.id).limit(1)).all()
        return True

    def ingest(
        self,
        group_name: str,
        push: dict[str, Any],
        capped: bool = True,
        likely_unchanged: bool = False,
        flush: bool = True,
    ) -> PushSummary:
        """Apply one normalized push (normalize.normalize_push) to a group, atomically.
        flush=False: see run_write.

        capped=False is for the gateway's own reports: it stores new keys past the group's
        maximum, and is no client's push, so the group's last push time stays.
        likely_unchanged=True: the push probably changes nothing (its counts are no higher
        than this process's last ones), which unchanged_summary finds out first.
        """
        if likely_unchanged:
            summary = self.unchanged_summary(group_name, push, capped)
            if summary is not None:
                return summary
        now = self.clock()
        process = process_id(push["target_uuid"])
        keys = _key_digests(push)
        budget = self.backend.budget

        def apply(connection: Connection) -> PushSummary:
            used_before = used_bytes(connection) if capped and budget is not None else None
            group_id, last_push_ns, occurrence_bytes = _lock_group(
                connection, group_name, now, self.settings.max_groups, pushed=capped
            )
            stored_rows: Sequence[Any] = ()
            if keys:
                stored_rows = STATE_OF_KEYS.rows(
                    connection, {"group_id": group_id, "process": process, "keys": keys}
                )
            states, summary = self._plan(connection, group_id, push, stored_rows, now, capped)
            if any(state.changed for state in states.values()):
                render_insertions(states)
                _save_aggregates(connection, group_id, states)
                _save_occurrences(connection, states)
                occurrence_bytes += sum(s.occurrence_bytes_change for s in states.values())
                occurrence_bytes = _bound_occurrence_bytes(
                    connection,
                    group_id,
                    occurrence_bytes,
                    self.settings.max_occurrence_bytes_per_group,
                )
                pushed_ns = now if capped else last_push_ns
                BUMP_GROUP.execute(
                    connection,
                    {"group_id": group_id, "now": pushed_ns, "occurrence_bytes": occurrence_bytes},
                )
            elif capped and now - (last_push_ns or 0) > _GROUP_TOUCH_NS:
                TOUCH_GROUP.execute(connection, {"group_id": group_id, "now": now})
            if process is not None:
                _save_counters(connection, process, group_id, states, now)
            if used_before is not None:
                budget.check(connection, used_before)  # type: ignore[union-attr]
            return summary

        return self.run_write(apply, flush=flush)

    def unchanged_summary(
        self,
        group_name: str,
        push: dict[str, Any],
        capped: bool = True,
        remembered: Any = None,
    ) -> PushSummary | None:
        """The summary of a push that changes nothing (the same state pushed again, or one
        that arrived after a later state of its process), found in a read transaction that
        takes no write lock, so such pushes do not queue behind writes; None when the push
        would change something (or adds counts: an anonymous push with a count always does).
        Occurrences need no "body" here: nothing is rendered or written.

        remembered: the body's entry in the worker's PushCache. On SQLite its Verdict, set
        here, answers without the read while nothing was committed to the database since (the
        steady state of processes pushing their unchanged state again into a quiet database)
        and neither the group nor the process's counters are due to be touched, for a
        fraction of the read's cost."""
        now = self.clock()
        if not capped or self.backend.database_stamp is None:
            remembered = None
        if remembered is not None:
            # Taken before the snapshot below: what is committed in between makes the verdict
            # found there one that the next stamp no longer matches.
            stamp = self.backend.database_stamp()  # type: ignore[misc]  # not None: see above
            verdict = remembered.verdict
            if verdict is not None and now <= verdict.until_ns and stamp == verdict.stamp:
                return verdict.summary
        process = process_id(push["target_uuid"])
        if process is None and any(a["total_count"] for a in push["aggregates"]):
            return None
        keys = _key_digests(push)

        def summary_if_unchanged(
            connection: "Connection | DriverConnection",
        ) -> PushSummary | None:
            rows = GROUP_AND_STATE_OF_KEYS.rows(
                connection, {"name": group_name, "process": process, "keys": keys}
            )
            if not rows:
                return None
            *_, group_id, last_push_ns = rows[0]
            if now - (last_push_ns or 0) > _GROUP_TOUCH_NS:
                return None
            states, summary = self._plan(connection, group_id, push, rows, now, capped)
            if any(state.changed for state in states.values()):
                return None
            if process is not None and any(counter_rows(process, group_id, states, now)):
                return None
            if remembered is not None:
                until_ns = min(
                    (last_push_ns or 0) + _GROUP_TOUCH_NS, counters_current_until(states)
                )
                remembered.verdict = Verdict(summary, stamp, until_ns)
            return summary

        return self.read_snapshot(summary_if_unchanged, driver_only=True)

    def _plan(
        self,
        connection: "Connection | DriverConnection",
        group_id: int,
        push: dict[str, Any],
        stored_rows: Sequence[Sequence[Any]],
        now: int,
        capped: bool,
    ) -> tuple[dict[str, AggregateState], PushSummary]:
        """How the push changes the group (planning.plan_push), given the rows of
        (GROUP_AND_)STATE_OF_KEYS for its keys: (states by key, PushSummary)."""
        keys_to_drop = self._keys_over_cap(connection, group_id) if capped else None
        return plan_push(
            push,
            stored_rows,
            _stored_uuids(connection, stored_rows),
            now,
            self.settings.occurrences_per_key,
            _stored_in_full(connection),
            keys_to_drop,
        )

    def _keys_over_cap(
        self, connection: "Connection | DriverConnection", group_id: int
    ) -> Callable[[dict[str, AggregateState]], set[str]]:
        """keys_to_drop for plan_push: the new keys past the group's maximum of keys."""

        def exported_keys() -> int:
            return VISIBLE_KEYS.first(connection, {"group_id": group_id})[0]

        return lambda states: keys_over_cap(states, exported_keys, self.settings.max_keys_per_group)

    def export(self, group_name: str, encoding: str | None = None) -> bytes | BufferedReader:
        """The group's export, read in one snapshot: bytes, or an open binary file holding them
        (export_cache.py). encoding "gzip" compresses it, once per change of the group."""
        unrendered = self._export_without_rendering(group_name, encoding)
        if unrendered is not None:
            return unrendered
        with self.engine.connect() as connection, connection.begin():
            group = connection.execute(GROUP_BY_NAME, {"name": group_name}).first()
            if group is None:
                return _empty_export(group_name, encoding)
            # The creation time tells a group apart from an earlier one that had its id.
            version = (group.id, group.created_ns, group.revision)
            cached = self.exports.open(group_name, version, encoding)
            if cached is not None:
                return cached
            body = self._plain_export(connection, group_name, group, version)
        if encoding is None:
            return body
        encoded = _encode(body, encoding)
        self.exports.put(group_name, version, encoded, encoding)
        return encoded

    def _export_without_rendering(
        self, group_name: str, encoding: str | None
    ) -> bytes | BufferedReader | None:
        """The group's export as it is now when nothing needs rendering: its cached export, or
        the empty one of a group that does not exist. Found on SQLite without SQLAlchemy's
        Connection (the backend's driver_snapshot), or None: most scrapes only find it."""
        if self.backend.driver_snapshot is None:
            return None
        version = self.read_snapshot(
            lambda connection: GROUP_VERSION.first(connection, {"name": group_name}),
            driver_only=True,
        )
        if version is None:
            return _empty_export(group_name, encoding)
        return self.exports.open(group_name, tuple(version), encoding)

    def _plain_export(
        self, connection: Connection, group_name: str, group: Row, version: tuple[int, ...]
    ) -> bytes:
        cached = self.exports.open(group_name, version)
        if cached is None:
            with one_at_a_time():
                # Another thread may have rendered it while this one waited.
                cached = self.exports.open(group_name, version)
                if cached is None:
                    body = _render(connection, group)
                    self.exports.put(group_name, version, body)
                    return body
        with cached:
            return cached.read()

    def note_rejected_push(self, group_name: str, flush: bool = True) -> None:
        """Record that a push to this group was just rejected, if the group exists (a
        rejected push creates no group). flush=False: see run_write."""
        now = self.clock()
        self.run_write(
            lambda connection: connection.execute(
                NOTE_REJECTED_PUSH, {"group_name": group_name, "now": now}
            ),
            flush=flush,
        )

    def resolve(self, group_name: str, aggregation_key: str) -> bool:
        """Take one error out of the export; its count is kept, so if it comes back the
        Periskop server sees it continue. Returns False when no such error is exported."""

        def apply(connection: Connection) -> bool:
            group = GROUP_FOR_UPDATE.first(connection, {"name": group_name})
            if group is None:
                return False
            group_id = group[0]
            aggregate_id = connection.execute(
                select(aggregates.c.id).where(
                    aggregates.c.group_id == group_id,
                    aggregates.c.key_digest == key_digest(aggregation_key),
                    aggregates.c.hidden.is_(False),
                )
            ).scalar()
            if aggregate_id is None:
                return False
            _hide(connection, [aggregate_id])
            connection.execute(BUMP_REVISION, {"group_id": group_id})
            return True

        return self.run_write(apply)

    def wipe(self, group_name: str) -> str | None:
        """Remove everything in a group and give it a new target_uuid, so the Periskop server
        starts counting afresh instead of seeing counts go down. Returns the new uuid, or None
        when the group does not exist."""
        now = self.clock()
        new_uuid = str(uuid.uuid4())

        def apply(connection: Connection) -> str | None:
            group = GROUP_FOR_UPDATE.first(connection, {"name": group_name})
            if group is None:
                return None
            group_id = group[0]
            in_group = select(aggregates.c.id).where(aggregates.c.group_id == group_id)
            connection.execute(occurrences.delete().where(occurrences.c.aggregate_id.in_(in_group)))
            connection.execute(
                process_counters.delete().where(process_counters.c.group_id == group_id)
            )
            connection.execute(aggregates.delete().where(aggregates.c.group_id == group_id))
            connection.execute(
                update(groups)
                .where(groups.c.id == group_id)
                .values(
                    target_uuid=new_uuid,
                    revision=groups.c.revision + 1,
                    last_push_ns=now,
                    occurrence_bytes=0,
                )
            )
            return new_uuid

        return self.run_freeing_write(apply)

    def prune(self) -> dict[str, int]:
        """Bound what is stored (pruning.py); returns how many rows each step touched."""
        return prune(self, self.clock())

    def read_snapshot(self, read: Callable[[Any], Any], driver_only: bool = False) -> Any:
        """read(connection) in a read-only transaction that sees one snapshot throughout.
        driver_only: read runs DriverStatements alone, which on SQLite then run without
        SQLAlchemy's Connection (engines.py's driver_snapshot)."""
        if driver_only and self.backend.driver_snapshot is not None:
            with self.backend.driver_snapshot() as connection:
                return read(connection)
        with self.engine.connect() as connection:
            connection.execution_options(**snapshot_options(connection))
            with connection.begin():
                return read(connection)

    def status(self) -> tuple[Sequence[Row], int | None]:
        """Groups with their key counts, the sum of their exported counts, their last
        accepted and rejected push, and the database's size."""
        with self.engine.connect() as connection, connection.begin():
            keys = (
                select(
                    aggregates.c.group_id,
                    func.count().label("stored"),
                    func.count().filter(aggregates.c.hidden.is_(False)).label("exported"),
                    # As a float, as Prometheus shows it: SQLite's integer sum() fails past
                    # 2^63, which 5,000 counts of up to 2^53 can pass.
                    func.sum(cast(aggregates.c.total_count, Float))
                    .filter(aggregates.c.hidden.is_(False))
                    .label("exported_count"),
                )
                .group_by(aggregates.c.group_id)
                .subquery()
            )
            rows = connection.execute(
                select(
                    groups.c.name,
                    groups.c.target_uuid,
                    groups.c.last_push_ns,
                    groups.c.last_rejected_ns,
                    func.coalesce(keys.c.exported, 0).label("exported"),
                    func.coalesce(keys.c.exported_count, 0).label("exported_count"),
                    func.coalesce(keys.c.stored, 0).label("stored"),
                )
                .select_from(groups.outerjoin(keys, keys.c.group_id == groups.c.id))
                .order_by(groups.c.name)
            ).all()
            size = database_size(connection)
        return rows, size

    def budget_use(self) -> tuple[int, DatabaseBudget] | None:
        """(bytes of pages in use, the budget) on SQLite; None where no budget is kept."""
        budget = self.backend.budget
        if budget is None:
            return None
        return self.read_snapshot(used_bytes), budget


def empty_group_uuid(group_name: str) -> str:
    """The target_uuid a group nothing was ever pushed to exports."""
    return str(uuid.uuid5(_EMPTY_GROUP_NAMESPACE, group_name))


def _render(connection: Connection, group: Row) -> bytes:
    exported: dict[
        int, tuple[str, int, str, int, list[str]]
    ] = {}  # aggregate id -> (key, count, severity, created, [bodies])
    # Streamed: PostgreSQL's driver would otherwise hold the whole result (as large as the
    # export) beside the rows made of it.
    rows = connection.execution_options(stream_results=True, yield_per=1000).execute(
        EXPORTED, {"group_id": group.id}
    )
    for row in rows:
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
    return render_export(group.target_uuid, list(exported.values()))


# zlib's default level: level 9 takes much longer for a few percent less.
_GZIP_LEVEL = 6


def _empty_export(group_name: str, encoding: str | None) -> bytes:
    """The export of a group nothing was pushed to."""
    return _encode(render_export(empty_group_uuid(group_name), []), encoding)


def _encode(body: bytes, encoding: str | None) -> bytes:
    if encoding is None:
        return body
    if encoding == "gzip":
        # mtime=0: the same export compresses to the same bytes in every worker.
        return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
    raise ValueError(f"unknown encoding {encoding!r}")


def _is_transient(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _key_digests(push: dict[str, Any]) -> list[bytes]:
    """The digests of a push's keys, each once, in the push's order."""
    return list(dict.fromkeys(key_digest(a["aggregation_key"]) for a in push["aggregates"]))


def _stored_uuids(
    connection: "Connection | DriverConnection", state_rows: Sequence[Sequence[Any]]
) -> Sequence[Any]:
    """Rows of STORED_UUIDS for the aggregates of rows of (GROUP_AND_)STATE_OF_KEYS."""
    aggregate_ids = [row[0] for row in state_rows if row[0] is not None]
    if not aggregate_ids:
        return ()
    return STORED_UUIDS.rows(connection, {"aggregate_ids": aggregate_ids})


def _stored_in_full(
    connection: "Connection | DriverConnection",
) -> Callable[[list[Any]], Sequence[Any]]:
    """stored_in_full for plan_push: rows of STORED_OCCURRENCES of some aggregates."""
    return lambda aggregate_ids: STORED_OCCURRENCES.rows(
        connection, {"aggregate_ids": aggregate_ids}
    )


def _lock_group(
    connection: Connection, name: str, now: int, max_groups: int, pushed: bool = True
) -> Any:
    """Create the group if needed and lock its row until the transaction ends; returns its id
    and when it was last pushed to (never, for a group made by the gateway's own report:
    pushed=False). Raises TooManyGroups rather than create one past
    max_groups (the default group is always there to be made: it holds the gateway's own
    reports). Instances creating groups at the same moment may each pass the count: the
    bound is max_groups plus the number of instances, less one."""
    row = GROUP_FOR_UPDATE.first(connection, {"name": name})
    if row is not None:
        return row
    if name and connection.execute(NAMED_GROUPS).scalar_one() >= max_groups:
        raise TooManyGroups(
            f"The gateway holds its maximum of {max_groups} groups "
            "(PERISKOP_PUSHGATEWAY_MAX_GROUPS): push to an existing group, or raise the limit. "
            "Groups that export nothing are deleted after the retention period."
        )
    try:
        with connection.begin_nested():
            connection.execute(
                INSERT_GROUP,
                {
                    "name": name,
                    "target_uuid": str(uuid.uuid4()),
                    "revision": 0,
                    "created_ns": now,
                    "last_push_ns": now if pushed else None,
                },
            )
    except IntegrityError:
        pass  # another gateway instance created it first
    return GROUP_FOR_UPDATE.first(connection, {"name": name})


def _save_aggregates(
    connection: Connection, group_id: int, states: dict[str, AggregateState]
) -> None:
    new = [(key, state) for key, state in states.items() if state.id is None]
    if new:
        rows = connection.execute(
            INSERT_AGGREGATES,
            [
                {
                    "group_id": group_id,
                    "aggregation_key": key,
                    "key_digest": key_digest(key),
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
        UPDATE_AGGREGATE.execute_many(
            connection,
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


def _save_occurrences(connection: Connection, states: dict[str, AggregateState]) -> None:
    rows = [
        {
            "aggregate_id": state.id,
            "uuid": occurrence["uuid"],
            "timestamp_ns": occurrence["timestamp_ns"],
            "body": occurrence["body"],
            "body_bytes": occurrence["body_bytes"],
        }
        for state in states.values()
        for occurrence in state.occurrences_to_insert
    ]
    if rows:
        INSERT_OCCURRENCES.execute_many(connection, rows)
    doomed = [row_id for state in states.values() for row_id in state.occurrence_ids_to_delete]
    if doomed:
        connection.execute(DELETE_OCCURRENCES, {"ids": doomed})


def _bound_occurrence_bytes(
    connection: Connection, group_id: int, occurrence_bytes: int, limit: int
) -> int:
    """Delete the group's oldest stored occurrences while it holds more than `limit` bytes of
    them; returns the bytes it then holds.

    It goes down to 7/8 of the limit, so that a group at its limit pays for this once per
    eighth of the limit pushed, not on every push. Any key may lose its occurrences, exported
    or hidden, newest or not: the bound holds whatever the keys. Their counts stay.
    """
    if occurrence_bytes <= limit:
        return occurrence_bytes
    to_free = occurrence_bytes - limit + limit // 8
    while to_free > 0:
        rows, freed = delete_oldest_occurrences(connection, group_id, to_free, _EVICTION_BATCH)
        if not rows:
            break
        occurrence_bytes -= freed
        to_free -= freed
    return occurrence_bytes


def _save_counters(
    connection: Connection, process: int, group_id: int, states: dict[str, AggregateState], now: int
) -> None:
    """Remember the highest cumulative count the pushing process reported for each key."""
    created, updated = counter_rows(process, group_id, states, now)
    if created:
        INSERT_COUNTERS.execute_many(connection, created)
    if updated:
        UPDATE_COUNTER.execute_many(connection, updated)


def _hide(connection: Connection, aggregate_ids: list[int]) -> None:
    """Take aggregates out of the export. Their counts stay, and so do their occurrences: a
    client re-pushing the same cumulative state must not bring a resolved error back, and
    only known uuids tell that it is the same."""
    connection.execute(
        update(aggregates).where(aggregates.c.id.in_(aggregate_ids)).values(hidden=True)
    )
