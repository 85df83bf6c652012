"""A large backlog is pruned in short batches: pushes keep being answered while it drains.

One prune that deleted millions of rows in one transaction once held the write lock past
gunicorn's timeout, was killed, rolled back, and started again by the next push: no push got
through. Here `periskop-pushgateway prune` drains 1,000,000 counters beyond a lowered cap in
another process while this one pushes without pause."""

import os
import random
import subprocess
import sys
import time

from sqlalchemy import func, insert, select

from periskop_pushgateway.storage.models import aggregates, groups, process_counters

from .helpers import aggregate, counts, post, push_body, scrape

BACKLOG = 1_000_000
CAP = 1000


def fill_counters(store, group, rows):
    """`rows` counters of processes that pushed long ago, spread over the group's keys."""
    with store.engine.begin() as connection:
        group_id = connection.execute(select(groups.c.id).where(groups.c.name == group)).scalar()
        aggregate_ids = list(
            connection.execute(
                select(aggregates.c.id).where(aggregates.c.group_id == group_id)
            ).scalars()
        )
        for start in range(0, rows, 20_000):
            connection.execute(
                insert(process_counters),
                [
                    {
                        "aggregate_id": random.choice(aggregate_ids),
                        "process_id": number,
                        "group_id": group_id,
                        "highest_total": 1,
                        "pushed_ns": number,
                    }
                    for number in range(start, min(rows, start + 20_000))
                ],
            )


def counter_rows(store):
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(process_counters)).scalar()


def test_pushes_are_answered_while_a_large_counter_backlog_is_pruned(make_app, database_url):
    app = make_app()
    client = app.test_client()
    store = app.extensions["periskop_pushgateway"].store
    keys = [f"Error@{n}" for n in range(50)]
    post(client, push_body(*(aggregate(key, 1) for key in keys), target_uuid="seed"), "jobs")
    fill_counters(store, "jobs", BACKLOG)

    prune = subprocess.Popen(
        [sys.executable, "-m", "periskop_pushgateway", "prune"],
        env={
            **os.environ,
            "PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url,
            "PERISKOP_PUSHGATEWAY_MAX_COUNTERS_PER_GROUP": str(CAP),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    statuses, latencies, while_draining = [], [], 0
    while prune.poll() is None:
        process = len(statuses)
        body = push_body(aggregate(keys[process % len(keys)], 1), target_uuid=f"p{process}")
        started = time.monotonic()
        statuses.append(post(client, body, "jobs").status_code)
        latencies.append(time.monotonic() - started)
        # Answered with part of the backlog gone and part left: between two batches. One
        # transaction for all of it would show no such moment.
        left = counter_rows(store)
        while_draining += CAP + len(statuses) < left < BACKLOG
    out, err = prune.communicate()
    assert prune.returncode == 0, err

    evicted = int(dict(part.split("=") for part in out.split())["evicted_counters"])
    assert evicted >= BACKLOG - CAP
    # Every push was answered, and many while the backlog drained: no batch held the write
    # lock for long. (The latencies are printed, not asserted: this machine is shared.)
    assert set(statuses) == {200}
    assert while_draining >= 50, f"{while_draining} of {len(statuses)} pushes while draining"
    print(
        f"{len(statuses)} pushes, {while_draining} of them while the backlog drained; "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert sum(counts(scrape(client, "jobs")).values()) == len(keys) + len(statuses)
