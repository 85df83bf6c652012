"""MAX_OCCURRENCE_BYTES_PER_GROUP: what a group stores of occurrences is bounded, whatever a
client pushes; the oldest stored go first, counts stay."""

import random

import pytest
from sqlalchemy import create_engine, text

from periskop_pushgateway import create_app

from .helpers import aggregate, by_key, counts, occurrence, post, push_body, scrape
from .test_persistence import database_at_revision

LIMIT = 200_000


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def stored_bytes(engine, group):
    """(running total the group keeps, actual bytes of its occurrences, number of them)."""
    with engine.connect() as connection:
        kept = connection.execute(
            text("SELECT occurrence_bytes FROM groups WHERE name = :name"), {"name": group}
        ).scalar_one()
        actual, number = connection.execute(
            text(
                "SELECT coalesce(sum(o.body_bytes), 0), count(*) FROM occurrences o "
                "JOIN aggregates a ON a.id = o.aggregate_id "
                "JOIN groups g ON g.id = a.group_id WHERE g.name = :name"
            ),
            {"name": group},
        ).one()
    return kept, actual, number


def big(message_size, timestamp="2026-01-01T00:00:00Z", n=0):
    return occurrence(f"{n:08d}" + "é" * message_size, timestamp=timestamp)


def test_a_group_never_stores_more_than_its_bound_and_keeps_the_newest(make_app, engine):
    client = make_app(MAX_OCCURRENCE_BYTES_PER_GROUP=LIMIT).test_client()
    for n in range(60):  # about 1.2 MB pushed into a 200 KB bound, 10 keys
        body = push_body(aggregate(f"K{n % 10}", 1, [big(5000, n=n)]))
        assert post(client, body, "jobs").status_code == 200
        kept, actual, _ = stored_bytes(engine, "jobs")
        assert kept == actual <= LIMIT
    assert actual > LIMIT * 0.6  # it keeps what fits, not nothing
    export = scrape(client, "jobs")
    assert counts(export) == {f"K{n}": 6 for n in range(10)}
    messages = [
        o["error"]["message"][:8] for a in export["aggregated_errors"] for o in a["latest_errors"]
    ]
    # The newest arrivals are the ones kept.
    assert max(map(int, messages)) == 59
    assert min(map(int, messages)) > 60 - LIMIT // 10_000 - 1


def test_occurrences_dated_far_ahead_do_not_keep_new_ones_out(make_app, engine):
    client = make_app(MAX_OCCURRENCE_BYTES_PER_GROUP=LIMIT).test_client()
    future = "2262-01-01T00:00:00Z"
    for n in range(40):
        post(client, push_body(aggregate(f"F{n}", 1, [big(5000, future, n)])), "jobs")
    post(client, push_body(aggregate("real", 1, [occurrence("it broke")])), "jobs")
    assert by_key(scrape(client, "jobs"))["real"]["latest_errors"][0]["error"]["message"] == (
        "it broke"
    )
    assert stored_bytes(engine, "jobs")[1] <= LIMIT


def test_the_running_total_stays_exact_through_every_write(make_app, engine):
    """Pushes replacing occurrences, resolves, pushes of resolved keys, pruning evicting
    hidden keys, the bound itself, wipes: the group's total is its occurrences' size."""
    app = make_app(
        MAX_OCCURRENCE_BYTES_PER_GROUP=LIMIT,
        OCCURRENCES_PER_KEY=3,
        MAX_KEYS_PER_GROUP=2,
    )
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    rng = random.Random(7)
    actions = []
    for step in range(300):
        key = f"K{rng.randrange(5)}"
        action = rng.random() if step else 0  # the first push makes the group
        if action < 0.75:
            sizes = [rng.choice([10, 500, 4000, 20_000]) for _ in range(rng.randrange(1, 5))]
            at = f"2026-01-01T00:{step // 60:02d}:{step % 60:02d}Z"
            body = push_body(aggregate(key, 1, [big(size, at, step) for size in sizes]))
            assert post(client, body, "jobs").status_code == 200
            actions.append("push")
        elif action < 0.9:
            status = client.delete(f"/services/jobs/-/errors/{key}").status_code
            actions.append(f"resolve {status}")
        elif action < 0.98:
            actions.append(f"prune {store.prune()['evicted_aggregates']}")
        else:
            assert client.delete("/services/jobs").status_code == 200
            actions.append("wipe")
        kept, actual, _ = stored_bytes(engine, "jobs")
        assert kept == actual <= LIMIT, actions
    assert {"push", "resolve 200", "wipe"} <= set(actions)
    # Then pruning deletes hidden keys past the cap of 2, with their occurrences.
    assert client.delete("/services/jobs").status_code == 200
    for n in range(5):
        post(client, push_body(aggregate(f"H{n}", 1, [big(3000, n=n)])), "jobs")
        client.delete(f"/services/jobs/-/errors/H{n}")
    assert store.prune()["evicted_aggregates"] == 3
    kept, actual, _ = stored_bytes(engine, "jobs")
    assert kept == actual <= LIMIT


def test_the_sizes_in_a_database_of_the_fourth_schema_are_counted(database_url, engine):
    stored_body = '{"message": "é日😀"}'
    with database_at_revision(database_url, "0004") as connection:
        connection.execute(
            text(
                "INSERT INTO groups (id, name, target_uuid, revision, created_ns) "
                "VALUES (1, 'jobs', '11111111-2222-3333-4444-555555555555', 1, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO aggregates (id, group_id, aggregation_key, key_digest, "
                "total_count, severity, created_ns, last_seen_ns) "
                "VALUES (1, 1, 'k', :digest, 1, 'error', 0, 0)"
            ),
            {"digest": b"0123456789abcdef"},
        )
        for n in range(3):
            connection.execute(
                text(
                    "INSERT INTO occurrences (aggregate_id, uuid, timestamp_ns, body) "
                    "VALUES (1, :uuid, 0, :body)"
                ),
                {"uuid": f"00000000-0000-0000-0000-00000000000{n + 1}", "body": stored_body},
            )
    create_app({"DATABASE_URL": database_url})  # upgrades it
    assert stored_bytes(engine, "jobs") == (3 * len(stored_body.encode()),) * 2 + (3,)
