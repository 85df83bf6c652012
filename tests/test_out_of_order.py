"""docs/protocol.md rule 2 against every order: processes push growing cumulative states, and the
gateway receives them in any order, any number of times, between prunes. Whatever the order,
each key's count is the sum over processes of the highest count each pushed, its occurrences
are the newest of all pushed ones, and no scrape ever sees a count go down."""

import itertools
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import post, scrape
from .periskop_server import ScrapeChecker

# Fewer occurrences kept than a client pushes, so that which are kept depends on order too.
KEPT_PER_KEY = 3
PUSHED_PER_KEY = 4
KEYS = ("Alpha@1", "Beta@2", "Gamma@3")
groups = (f"order-{n}" for n in itertools.count())

# A process's history: each step, some errors of one key happen; it may push after any step.
steps = st.lists(st.tuples(st.sampled_from(KEYS), st.integers(1, 3)), min_size=1, max_size=6)
histories = st.lists(steps, min_size=1, max_size=3)


def cumulative_states(history, process, clock):
    """The body a process pushes after each step: every key's running count and its last
    PUSHED_PER_KEY occurrences, as the Periskop clients send them."""
    totals, occurrences, bodies = {}, {}, []
    for key, errors in history:
        totals[key] = totals.get(key, 0) + errors
        for _ in range(errors):
            stamp = next(clock)  # every occurrence at its own time: no ties to order
            occurrences.setdefault(key, []).append(
                {
                    "error": {"class": key.split("@")[0], "message": f"{process} {stamp}"},
                    "uuid": str(uuid.uuid4()),
                    "timestamp": f"2026-01-01T00:{stamp // 60:02d}:{stamp % 60:02d}Z",
                }
            )
        bodies.append(
            {
                "target_uuid": process,
                "aggregated_errors": [
                    {
                        "aggregation_key": name,
                        "total_count": count,
                        "latest_errors": occurrences[name][-PUSHED_PER_KEY:],
                    }
                    for name, count in totals.items()
                ],
            }
        )
    return bodies


@st.composite
def deliveries(draw):
    """(every body pushed, in the order and number of times the gateway receives them, with
    None where a prune runs; the truth: counts and the uuids of every occurrence pushed)."""
    clock = itertools.count()
    pushes, truth = [], {}
    for number, history in enumerate(draw(histories)):
        bodies = cumulative_states(history, f"process-{number}", clock)
        for key, count in {
            a["aggregation_key"]: a["total_count"] for a in bodies[-1]["aggregated_errors"]
        }.items():
            truth[key] = truth.get(key, 0) + count
        sent = draw(st.lists(st.booleans(), min_size=len(bodies), max_size=len(bodies)))
        # The last state is always sent at least once (a job pushes at exit); others maybe not,
        # maybe twice.
        pushes += [body for body, again in zip(bodies, sent, strict=True) for _ in range(1 + again)]
        pushes += [bodies[-1]]
    pushes += [None] * draw(st.integers(0, 3))
    return draw(st.permutations(pushes)), truth


def newest_pushed(pushes, key):
    """The uuids of the KEPT_PER_KEY newest occurrences of `key` among all pushed."""
    pushed = {
        occurrence["uuid"]: occurrence["timestamp"]
        for body in pushes
        if body
        for aggregate in body["aggregated_errors"]
        if aggregate["aggregation_key"] == key
        for occurrence in aggregate["latest_errors"]
    }
    return set(sorted(pushed, key=pushed.get)[-KEPT_PER_KEY:])


@pytest.fixture
def gateway(make_app):
    """One gateway (and database) for all examples: each example pushes to a group of its own."""
    return make_app(OCCURRENCES_PER_KEY=KEPT_PER_KEY)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(deliveries())
def test_counts_and_occurrences_are_the_same_whatever_the_order_of_arrival(gateway, delivery):
    pushes, truth = delivery
    app = gateway
    client, housekeeping = app.test_client(), app.extensions["periskop_pushgateway"].housekeeping
    group = next(groups)
    checker = ScrapeChecker()
    for body in pushes:
        if body is None:
            housekeeping.run()
        else:
            response = post(client, json.dumps(body), group)
            assert response.status_code == 200, response.data
        checker.observe(scrape(client, group))

    exported = {a["aggregation_key"]: a for a in scrape(client, group)["aggregated_errors"]}
    assert {key: a["total_count"] for key, a in exported.items()} == truth
    for key, aggregate in exported.items():
        assert {o["uuid"] for o in aggregate["latest_errors"]} == newest_pushed(pushes, key)
