"""MAX_DATABASE_BYTES on SQLite: the database's pages in use stay within the budget less the
WAL's limit (SQLITE_WAL_LIMIT_BYTES), so that the database file and its WAL together stay
within the budget.

Two parts keep it. Housekeeping, off the request path, evicts the oldest occurrences of the
groups holding the most once the pages in use pass EVICT_ABOVE of the limit, down to
EVICT_DOWN_TO, fair share: every group above one level gives back what it holds beyond it,
the others keep theirs. Counts stay. And a push whose own writes would take the pages in use
past the limit is refused (DatabaseFull, nothing of it stored): what fills the database then
is keys and counters, which are never evicted for room (that would lose counts), or pushes
coming faster than housekeeping evicts.

PostgreSQL keeps no such budget: its files do not shrink when rows are deleted (VACUUM keeps
the room for its own reuse), so it gives no cheap measure of what the gateway holds; its disk
is watched with its server's tools."""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from ..errors import DatabaseFull
from .models import groups
from .statements import BUMP_REVISION, DELETE_OCCURRENCES, OLDEST_OCCURRENCES, SHRINK_GROUP_BYTES

if TYPE_CHECKING:
    from .store import Store

# Fractions of the limit: eviction starts above the first and goes down to the second. The
# gap is room for what pushes add between two looks (a second apart) without being refused.
EVICT_ABOVE = 7 / 8
EVICT_DOWN_TO = 3 / 4
# Occurrences deleted per transaction: each is short, so a push waits at most one of them.
EVICTION_BATCH_ROWS = 1000
PAUSE_BETWEEN_BATCHES_S = 0.005
# Rounds of eviction per look at most, each aimed by a fresh measure (keep_within_budget).
EVICTION_ROUNDS = 6

# The bytes of pages in use: the file's pages less those on its free list, as the calling
# transaction sees them (its own writes included).
_USED_BYTES_SQL = (
    "SELECT (p.page_count - f.freelist_count) * s.page_size "
    "FROM pragma_page_count() AS p, pragma_freelist_count() AS f, pragma_page_size() AS s"
)

_GROUPS_HOLDING_OCCURRENCES = (
    select(groups.c.id, groups.c.name, groups.c.occurrence_bytes)
    .where(groups.c.occurrence_bytes > 0)
    .order_by(groups.c.occurrence_bytes.desc())
)


@dataclass(frozen=True)
class DatabaseBudget:
    # MAX_DATABASE_BYTES, the whole budget.
    budget_bytes: int
    # Pages in use stay within this: the budget less the WAL's limit.
    limit_bytes: int

    @property
    def evict_above_bytes(self) -> int:
        return int(self.limit_bytes * EVICT_ABOVE)

    @property
    def evict_down_to_bytes(self) -> int:
        return int(self.limit_bytes * EVICT_DOWN_TO)

    def check(self, connection: Connection, used_before: int) -> None:
        """Refuse (DatabaseFull, the transaction to be rolled back) when the calling write
        transaction grew the pages in use, from used_before (used_bytes at its start), past
        the limit. One that grew nothing goes, whatever the database holds."""
        used = used_bytes(connection)
        if used > self.limit_bytes and used > used_before:
            raise DatabaseFull(
                f"The database would hold {used:,} bytes with this push, past its budget of "
                f"{self.limit_bytes:,} (PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES less "
                "PERISKOP_PUSHGATEWAY_SQLITE_WAL_LIMIT_BYTES): nothing of it was stored. "
                "Housekeeping evicts the oldest occurrences of the largest groups within "
                "seconds; what cannot be evicted (keys, counters) needs the budget raised, "
                "or groups deleted."
            )


def database_budget(config: Mapping[str, Any]) -> DatabaseBudget:
    """The budget the settings give (config_check refuses a WAL limit that leaves too little)."""
    budget = config["MAX_DATABASE_BYTES"]
    return DatabaseBudget(budget, budget - config["SQLITE_WAL_LIMIT_BYTES"])


def used_bytes(connection: Connection) -> int:
    """Bytes of pages in use in a SQLite database, as the connection's transaction sees them
    (on its driver's connection: a push measures twice)."""
    driver = connection.connection.driver_connection
    return int(driver.execute(_USED_BYTES_SQL).fetchone()[0])  # type: ignore[union-attr]


@dataclass(frozen=True)
class Eviction:
    """What one look at the budget did."""

    used_before: int
    used_after: int
    occurrences: int
    groups: tuple[str, ...]


def keep_within_budget(store: "Store", budget: DatabaseBudget) -> Eviction | None:
    """Evict occurrences, fair share, when the pages in use are past EVICT_ABOVE of the limit;
    what it did, or None when within it. Each deletion is a short write transaction of its
    own, so no request waits for more than one.

    A row takes more than its occurrence's bytes (its header, its index entries), and pages
    shared with rows that stay are not freed: the first round evicts for half the gap, and
    each next one for what is left, scaled by the pages the rounds before freed per byte
    evicted, so that the groups lose what the budget needs and not much more."""
    used = store.read_snapshot(used_bytes)
    if used <= budget.evict_above_bytes:
        return None
    before, evicted, touched = used, 0, set()
    freed_pages = freed_bytes = 0
    for round_number in range(EVICTION_ROUNDS):
        gap = used - budget.evict_down_to_bytes
        if round_number == 0 or not freed_bytes:
            to_free = gap // 2
        else:
            pages_per_byte = min(max(freed_pages / freed_bytes, 0.25), 4.0)
            to_free = int(gap / pages_per_byte)
        holding = store.read_snapshot(
            lambda connection: connection.execute(_GROUPS_HOLDING_OCCURRENCES).all()
        )
        level = fair_level([row.occurrence_bytes for row in holding], to_free)
        rows_this_round = bytes_this_round = 0
        for row in holding:
            if row.occurrence_bytes <= level:
                break  # ordered by bytes, the largest first
            rows, freed = _evict_down_to(store, row.id, row.occurrence_bytes - level)
            if rows:
                rows_this_round += rows
                bytes_this_round += freed
                touched.add(row.name)
        evicted += rows_this_round
        measured = store.read_snapshot(used_bytes)
        freed_pages += max(used - measured, 0)
        freed_bytes += bytes_this_round
        used = measured
        if used <= budget.evict_down_to_bytes or not rows_this_round:
            break
    return Eviction(before, used, evicted, tuple(sorted(touched)))


def fair_level(held: Sequence[int], to_free: int) -> int:
    """The highest level L at which the groups holding more than L, each giving back what it
    holds beyond L, give back at least to_free in all (0 when all of it is not enough)."""
    ordered = sorted(held, reverse=True)
    above = 0  # what the k largest hold together
    for k, amount in enumerate(ordered, start=1):
        above += amount
        level = (above - to_free) // k
        below = ordered[k] if k < len(ordered) else 0
        if level >= below:
            return max(level, 0)
    return 0


def _evict_down_to(store: "Store", group_id: int, to_free: int) -> tuple[int, int]:
    """Delete the group's oldest stored occurrences until `to_free` bytes of them are gone:
    (rows, bytes) that went."""
    evicted = freed_in_all = 0
    while to_free > 0:
        if evicted:
            time.sleep(PAUSE_BETWEEN_BATCHES_S)
        rows, freed = store.run_freeing_write(
            lambda connection, n=to_free: _evict_batch(connection, group_id, n)  # type: ignore[misc]
        )
        if not rows:
            break
        evicted += rows
        freed_in_all += freed
        to_free -= freed
    return evicted, freed_in_all


def _evict_batch(connection: Connection, group_id: int, to_free: int) -> tuple[int, int]:
    """Delete at most EVICTION_BATCH_ROWS of the group's oldest occurrences, enough for
    to_free bytes: (rows, bytes)."""
    rows, freed = delete_oldest_occurrences(connection, group_id, to_free, EVICTION_BATCH_ROWS)
    if rows:
        connection.execute(SHRINK_GROUP_BYTES, {"group_id": group_id, "freed": freed})
        connection.execute(BUMP_REVISION, {"group_id": group_id})
    return rows, freed


def delete_oldest_occurrences(
    connection: Connection, group_id: int, to_free: int, most: int
) -> tuple[int, int]:
    """Delete the group's oldest stored occurrences (by arrival), at most `most` of them,
    until to_free bytes of them are gone: (rows, bytes) deleted. The group's own byte count
    is the caller's to keep."""
    oldest = connection.execute(OLDEST_OCCURRENCES, {"group_id": group_id, "limit": most}).all()
    doomed, freed = [], 0
    for row_id, body_bytes in oldest:
        if freed >= to_free:
            break
        doomed.append(row_id)
        freed += body_bytes
    if doomed:
        connection.execute(DELETE_OCCURRENCES, {"ids": doomed})
    return len(doomed), freed
