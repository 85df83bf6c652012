"""How a push changes a group's stored state, worked out in memory and free of SQL: the store
reads the pushed keys' rows, plan_push works out what to write, and the store writes it."""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..wire.normalize import render

# Largest count a 64-bit column (and the Periskop server's int64) holds.
MAX_TOTAL = 2**63 - 1

# A process's counter row is rewritten when its highest count rises, and otherwise only this
# often, to keep "when it last pushed" current enough to evict the least recently pushed
# counters first, without a write for every repeated push.
COUNTER_TOUCH_NS = 5 * 60 * 10**9


@dataclass
class PushSummary:
    """What a push changed: the response body of POST /errors."""

    aggregates: int = 0
    new_occurrences: int = 0
    count_increase: int = 0
    # New keys not stored because the group holds its maximum of keys.
    dropped_keys: int = 0
    # Keys whose count was below the highest the same process had already pushed: a push
    # that arrived out of order (see count()).
    stale_keys: int = 0


# Where a row of STORED_UUIDS (and of STORED_OCCURRENCES) holds the occurrence's uuid.
_UUID = 2


class StoredOccurrence(NamedTuple):
    id: int
    uuid: str
    timestamp_ns: int
    body_bytes: int


@dataclass
class AggregateState:
    """One aggregation key of the group while a push is applied to it."""

    id: int | None
    total_count: int
    severity: str
    created_ns: int
    last_seen_ns: int
    hidden: bool = False
    # The pushing process's counter for this key, as stored before this push: the highest
    # count it reported, and when it last pushed the key. None: no counter stored.
    highest: int | None = None
    counter_pushed_ns: int | None = None
    # The highest count of this key in this push, from an identified process.
    pushed_highest: int | None = None
    # What is stored of its occurrences: rows of STORED_UUIDS, then of STORED_OCCURRENCES (the
    # aggregate's id, then a StoredOccurrence's fields) when a push changes them.
    stored_occurrences: list = field(default_factory=list)
    changed: bool = False
    pushed_occurrences: dict = field(default_factory=dict)
    occurrences_to_insert: list = field(default_factory=list)
    occurrence_ids_to_delete: list = field(default_factory=list)
    # Bytes of occurrences this push adds to the key (once rendered: render_insertions), less
    # those it deletes.
    occurrence_bytes_change: int = 0


def process_id(target_uuid: str | None) -> int | None:
    """The 64-bit digest a process's counters are stored under (None for an anonymous push).

    Two processes pushing the same key share a counter only if their target_uuids share a
    digest: with n processes per key that happens with probability about n²/2^65 (3e-10 for
    100,000), and then they count as the larger of the two.
    """
    if not target_uuid:
        return None
    digest = hashlib.blake2b(target_uuid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def key_digest(aggregation_key: str) -> bytes:
    """The 16-byte digest an aggregation key is indexed by. Two keys of one group would clash
    only with probability about n²/2^129 for n keys: never, in practice."""
    return hashlib.blake2b(aggregation_key.encode(), digest_size=16).digest()


def plan_push(
    push: dict[str, Any],
    stored_rows: Iterable[Sequence[Any]],
    stored_uuids: Iterable[Sequence[Any]],
    now: int,
    occurrences_per_key: int,
    stored_in_full: Callable[[list[Any]], Iterable[Sequence[Any]]],
    keys_to_drop: Callable[[dict[str, AggregateState]], set[str]] | None = None,
) -> tuple[dict[str, AggregateState], PushSummary]:
    """The push (normalize.normalize_push) applied in memory to the stored state of its keys
    (rows of statements.STATE_OF_KEYS, and of STORED_UUIDS for them). stored_in_full(ids) reads
    the rows of STORED_OCCURRENCES of those aggregates, which only keys whose occurrences change
    need. keys_to_drop(states), when given, names new keys not to store. Returns (states by
    key, summary); states say what to write."""
    pushed = push["aggregates"]
    states = states_of_keys(stored_rows, stored_uuids, pushed)
    dropped = keys_to_drop(states) if keys_to_drop else set()
    if dropped:
        pushed = [a for a in pushed if a["aggregation_key"] not in dropped]
        for key in dropped:
            del states[key]
    increase, stale = count(pushed, states, bool(push["target_uuid"]), now)
    new_occurrences = merge_occurrences(states, occurrences_per_key, now, stored_in_full)
    return states, PushSummary(len(states), new_occurrences, increase, len(dropped), stale)


def states_of_keys(
    stored_rows: Iterable[Sequence[Any]],
    stored_uuids: Iterable[Sequence[Any]],
    pushed: list[dict[str, Any]],
) -> dict[str, AggregateState]:
    """Every pushed key's state: as stored (rows of STATE_OF_KEYS, and of STORED_UUIDS), or
    new."""
    states: dict[str, AggregateState] = {}
    by_id: dict[int, AggregateState] = {}
    for row in stored_rows:
        # Unpacked by position: it takes less than half the time of reading columns by name.
        (aggregate_id, key, total, severity, created, last_seen, hidden, highest, pushed_ns,
         *_group_columns) = row  # fmt: skip
        if aggregate_id is None:
            continue  # the group's own row, when none of the pushed keys is stored
        states[key] = by_id[aggregate_id] = AggregateState(
            aggregate_id,
            total,
            severity,
            created,
            last_seen,
            hidden=hidden,
            highest=highest,
            counter_pushed_ns=pushed_ns,
        )
    for row in stored_uuids:
        by_id[row[0]].stored_occurrences.append(row)
    for aggregate in pushed:
        key = aggregate["aggregation_key"]
        if key not in states:
            states[key] = AggregateState(
                None, 0, aggregate["severity"], aggregate["created_ns"], 0, changed=True
            )
    return states


def keys_over_cap(
    states: dict[str, AggregateState], count_visible: Callable[[], int], max_keys: int
) -> set[str]:
    """The new keys of this push that would take the group past its maximum of exported keys
    (the last ones pushed). count_visible() reads how many the group exports, when needed."""
    new_keys = [key for key, state in states.items() if state.id is None]
    if not new_keys:
        return set()
    room = max(0, max_keys - count_visible())
    return set(new_keys[room:])


def count(
    pushed: list[dict[str, Any]], states: dict[str, AggregateState], identified: bool, now: int
) -> tuple[int, int]:
    """Add each pushed key's increase to its aggregate; return (sum of increases, stale keys).

    A process identified by target_uuid pushes its cumulative count, and draws a new uuid
    whenever it starts. So per key only what exceeds the highest count it pushed before is
    new; a lower or equal count adds nothing and lowers nothing: it is a push that arrived
    out of order (threads of one process pushing at once, a retry), never a reset. This is
    the Periskop server's own rule for a scraped target. A key named twice in one push
    counts as its highest entry. An anonymous push adds each entry's count as it is.

    The severity of a stale key (below the highest) is not taken: it is an older state's.
    """
    entries_by_key: dict[str, list[dict[str, Any]]] = {}
    for aggregate in pushed:
        entries_by_key.setdefault(aggregate["aggregation_key"], []).append(aggregate)
    increase = stale_keys = 0
    for key, entries in entries_by_key.items():
        state = states[key]
        stale = False
        if identified:
            pushed_highest = max(entry["total_count"] for entry in entries)
            state.pushed_highest = pushed_highest
            if state.highest is None:
                delta = pushed_highest
            else:
                delta = max(0, pushed_highest - state.highest)
                stale = pushed_highest < state.highest
        else:
            delta = sum(entry["total_count"] for entry in entries)
        stale_keys += stale
        if delta and state.total_count < MAX_TOTAL:
            # Saturates rather than overflowing the 64-bit column: a count never goes down.
            state.total_count = min(state.total_count + delta, MAX_TOTAL)
            state.last_seen_ns = now
            state.hidden = False  # a resolved or expired error that happens again is back
            state.changed = True
            increase += delta
        severity = entries[-1]["severity"]
        if not stale and severity != state.severity:
            state.severity = severity
            state.changed = True
        created_ns = min(entry["created_ns"] for entry in entries)
        if created_ns < state.created_ns:
            state.created_ns = created_ns
            state.changed = True
        for entry in entries:
            for occurrence in entry["occurrences"]:
                state.pushed_occurrences.setdefault(occurrence["uuid"], occurrence)
    return increase, stale_keys


def merge_occurrences(
    states: dict[str, AggregateState],
    per_key: int,
    now: int,
    stored_in_full: Callable[[list[Any]], Iterable[Sequence[Any]]],
) -> int:
    """Plan each aggregate's newest `per_key` occurrences, de-duplicated by uuid.

    Sets each state's occurrences to insert and stored ids to delete; returns how many pushed
    occurrences will be stored. stored_in_full: see plan_push.
    """
    changing = [
        state
        for state in states.values()
        if state.pushed_occurrences and not _settled(state, per_key)
    ]
    _read_in_full(changing, stored_in_full)
    new_occurrences = 0
    for state in changing:
        stored = state.stored_occurrences
        known = {row[_UUID] for row in stored}
        rows = [StoredOccurrence(*row[1:]) for row in stored]
        # Newest first; among equal timestamps, what was stored stays ahead of what is pushed.
        candidates: list[tuple[tuple[int, int, int], StoredOccurrence | None, Any]] = [
            ((row.timestamp_ns, 1, row.id), row, None) for row in rows
        ]
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
        deleted = [row for _, row, _ in dropped if row is not None]
        state.occurrence_ids_to_delete = [row.id for row in deleted]
        state.occurrence_bytes_change = -sum(row.body_bytes for row in deleted)
        if state.occurrences_to_insert:
            state.last_seen_ns = now
            state.hidden = False
            new_occurrences += len(state.occurrences_to_insert)
        if state.occurrences_to_insert or state.occurrence_ids_to_delete:
            state.changed = True
    return new_occurrences


def _settled(state: AggregateState, per_key: int) -> bool:
    """The steady case, a state pushed again: every pushed occurrence is stored, and none
    stored is past the bound, so what is stored is what is kept."""
    stored = state.stored_occurrences
    return len(stored) <= per_key and {row[_UUID] for row in stored}.issuperset(
        state.pushed_occurrences
    )


def _read_in_full(
    states: list[AggregateState],
    stored_in_full: Callable[[list[Any]], Iterable[Sequence[Any]]],
) -> None:
    """Replace the stored uuids of these states by their full rows of STORED_OCCURRENCES."""
    ids = [state.id for state in states if state.stored_occurrences]
    if not ids:
        return
    rows_by_id: dict[int | None, list[Sequence[Any]]] = {aggregate_id: [] for aggregate_id in ids}
    for row in stored_in_full(ids):
        rows_by_id[row[0]].append(row)
    for state in states:
        if state.stored_occurrences:
            state.stored_occurrences = rows_by_id[state.id]


def render_insertions(states: dict[str, AggregateState]) -> None:
    """Render the occurrences a plan inserts (normalize.render), which only a write needs,
    and add their bytes to their keys' occurrence_bytes_change."""
    for state in states.values():
        for occurrence in state.occurrences_to_insert:
            state.occurrence_bytes_change += render(occurrence)["body_bytes"]


def counters_current_until(states: dict[str, AggregateState]) -> int:
    """Until when (ns since the epoch) the pushing process's stored counters of these keys stay
    current enough not to be rewritten (counter_rows), for a push that raises none of them."""
    return min(
        (
            # A stored counter (highest) has its pushed_ns.
            state.counter_pushed_ns + COUNTER_TOUCH_NS  # type: ignore[operator]
            for state in states.values()
            if state.pushed_highest is not None and state.highest is not None
        ),
        default=MAX_TOTAL,
    )


def counter_rows(
    process: int, group_id: int, states: dict[str, AggregateState], now: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pushing process's counter rows to create and to update: (created, updated)."""
    created, updated = [], []
    for state in states.values():
        if state.pushed_highest is None:
            continue
        if state.highest is None:
            created.append(
                {
                    "aggregate_id": state.id,
                    "process_id": process,
                    "group_id": group_id,
                    "highest_total": state.pushed_highest,
                    "pushed_ns": now,
                }
            )
        elif (
            state.pushed_highest > state.highest or now - state.counter_pushed_ns > COUNTER_TOUCH_NS  # type: ignore[operator]
        ):
            updated.append(
                {
                    "_id": state.id,
                    "_process": process,
                    "_highest": max(state.highest, state.pushed_highest),
                    "_now": now,
                }
            )
    return created, updated
