"""How a push changes a group's stored state, worked out in memory and free of SQL: the store
reads the pushed keys' rows, these functions plan what to write, and the store writes it."""

from dataclasses import dataclass, field
from typing import NamedTuple

# Largest count a 64-bit column (and the Periskop server's int64) holds.
MAX_TOTAL = 2**63 - 1

# A process's counter row is rewritten when its count changes, and otherwise only this often,
# to keep "when it last pushed" roughly current without a write for every repeated push.
COUNTER_TOUCH_NS = 5 * 60 * 10**9


@dataclass
class PushSummary:
    """What a push changed: the response body of POST /errors."""

    aggregates: int = 0
    new_occurrences: int = 0
    count_increase: int = 0
    # New keys not stored because the group holds its maximum of keys.
    dropped_keys: int = 0


class StoredOccurrence(NamedTuple):
    id: int
    uuid: str
    timestamp_ns: int


@dataclass
class AggregateState:
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
    # What is stored of its occurrences: StoredOccurrence tuples.
    stored_occurrences: list = field(default_factory=list)
    changed: bool = False
    pushed_occurrences: dict = field(default_factory=dict)
    occurrences_to_insert: list = field(default_factory=list)
    occurrence_ids_to_delete: list = field(default_factory=list)


def states_of_keys(stored_rows, pushed):
    """Every pushed key's state: as stored (rows of STATE_OF_KEYS), or new."""
    states = {}
    for row in stored_rows:
        # Unpacked by position: it takes less than half the time of reading columns by name.
        (aggregate_id, key, total, severity, created, last_seen, hidden, last_total, updated,
         occurrence_id, occurrence_uuid, occurrence_timestamp, *_group_columns) = row  # fmt: skip
        if aggregate_id is None:
            continue  # the group's own row, when none of the pushed keys is stored
        state = states.get(key)
        if state is None:
            state = states[key] = AggregateState(
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
                StoredOccurrence(occurrence_id, occurrence_uuid, occurrence_timestamp)
            )
    for aggregate in pushed:
        key = aggregate["aggregation_key"]
        if key not in states:
            states[key] = AggregateState(
                None, 0, aggregate["severity"], aggregate["created_ns"], 0, changed=True
            )
    return states


def keys_over_cap(states, count_visible, max_keys):
    """The new keys of this push that would take the group past its maximum of exported keys
    (the last ones pushed). count_visible() reads how many the group exports, when needed."""
    new_keys = [key for key, state in states.items() if state.id is None]
    if not new_keys:
        return set()
    room = max(0, max_keys - count_visible())
    return set(new_keys[room:])


def count(pushed, states, identified, now):
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


def merge_occurrences(states, per_key, now):
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


def counter_rows(client, pushed, states, now):
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
        elif total != state.last_total or now - state.counter_updated_ns > COUNTER_TOUCH_NS:
            updated.append({"_id": state.id, "_client": client, "_total": total, "_now": now})
    return created, updated
