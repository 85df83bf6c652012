"""plan_push reads stored occurrences in full only for keys whose occurrences a push changes."""

from periskop_pushgateway.storage.planning import plan_push

NOW = 10**18


def pushed(key, count, *occurrences):
    return {
        "aggregation_key": key,
        "total_count": count,
        "severity": "error",
        "created_ns": 1,
        "occurrences": [{"uuid": u, "timestamp_ns": t, "body_bytes": 10} for u, t in occurrences],
    }


def state_row(aggregate_id, key, total):
    # A row of STATE_OF_KEYS: the aggregate, then the pushing process's counter (none).
    return (aggregate_id, key, total, "error", 1, 5, False, None, None)


# Rows of STORED_OCCURRENCES: aggregate id, id, uuid, timestamp, bytes.
STORED = [(1, 11, "a1", 100, 7), (1, 12, "a2", 200, 7), (2, 21, "b1", 100, 9)]


class InFull:
    def __init__(self):
        self.asked = []

    def __call__(self, aggregate_ids):
        self.asked.append(sorted(aggregate_ids))
        return [row for row in STORED if row[0] in aggregate_ids]


def plan(push_aggregates, in_full, per_key=2):
    push = {"target_uuid": "p", "aggregates": push_aggregates}
    rows = [state_row(1, "A", 3), state_row(2, "B", 3)]
    uuids = [row[:3] for row in STORED]
    return plan_push(push, rows, uuids, NOW, per_key, in_full)


def test_a_push_of_stored_occurrences_reads_no_more_than_their_uuids():
    in_full = InFull()
    states, summary = plan([pushed("A", 1, ("a1", 100), ("a2", 200)), pushed("B", 1)], in_full)
    assert in_full.asked == []
    assert summary.new_occurrences == 0
    assert not states["A"].occurrences_to_insert


def test_only_the_keys_whose_occurrences_change_are_read_in_full():
    in_full = InFull()
    states, summary = plan(
        [pushed("A", 1, ("a1", 100), ("a3", 300)), pushed("B", 1, ("b1", 100))], in_full
    )
    assert in_full.asked == [[1]]
    assert summary.new_occurrences == 1
    # The newest two kept: a3 inserted, a1 (the oldest, 7 bytes) deleted.
    assert [o["uuid"] for o in states["A"].occurrences_to_insert] == ["a3"]
    assert states["A"].occurrence_ids_to_delete == [11]
    assert states["A"].occurrence_bytes_change == -7
    assert states["B"].occurrences_to_insert == []


def test_a_new_key_needs_no_read():
    in_full = InFull()
    push = {"target_uuid": "p", "aggregates": [pushed("C", 1, ("c1", 1))]}
    states, summary = plan_push(push, [], [], NOW, 2, in_full)
    assert in_full.asked == []
    assert summary.new_occurrences == 1
