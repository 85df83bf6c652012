"""Storage stays bounded over months: retention, a cap on counters, a cap on keys."""

import subprocess
import sys
import time

import pytest

from periskop_pushgateway.wire.normalize import normalize_push

from .conftest import TEST_DATABASE
from .helpers import Clock, aggregate, by_key, counts, occurrence, post, push_body, scrape
from .periskop_server import ScrapeChecker

DAY = 86400 * 10**9


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gateway(make_app, clock):
    def make(**settings):
        app = make_app(**settings)
        gateway = app.extensions["periskop_pushgateway"]
        gateway.store.clock = clock
        return app.test_client(), gateway

    return make


def test_an_error_unchanged_past_retention_leaves_the_export_and_returns_counting_on(
    gateway, clock
):
    client, gateway_ = gateway()
    checker = ScrapeChecker()
    post(client, push_body(aggregate("k", 3, [occurrence("first")]), target_uuid="p"))
    checker.observe(scrape(client))
    clock.advance(8 * DAY)
    post(client, push_body(aggregate("other", 1)))
    gateway_.housekeeping.run_if_due()  # the worker's housekeeping thread, at its next tick
    checker.observe(scrape(client))
    assert "k" not in counts(scrape(client))

    # A later run of the job: a new process, the same error twice.
    post(client, push_body(aggregate("k", 2, [occurrence("again")]), target_uuid="p2"))
    checker.observe(scrape(client))
    returned = by_key(scrape(client))["k"]
    assert returned["total_count"] == 5
    assert [o["error"]["message"] for o in returned["latest_errors"]] == ["first", "again"]


def test_a_cumulative_repush_without_news_does_not_bring_an_error_back(gateway, clock):
    client, gateway_ = gateway()
    post(client, push_body(aggregate("k", 3), target_uuid="p"))
    clock.advance(8 * DAY)
    gateway_.housekeeping.run()
    post(client, push_body(aggregate("k", 3), target_uuid="p"))
    assert "k" not in counts(scrape(client))


def test_retention_zero_keeps_errors_forever(gateway, clock):
    client, gateway_ = gateway(RETENTION_SECONDS=0)
    post(client, push_body(aggregate("k", 3)))
    clock.advance(400 * DAY)
    gateway_.housekeeping.run()
    assert counts(scrape(client)) == {"k": 3}


def test_a_long_lived_process_quiet_for_days_is_not_counted_again(gateway, clock):
    """A web app that raises an error every few days pushes its cumulative count each time:
    its counter is kept as long as the error is, through retention too."""
    client, gateway_ = gateway()
    post(client, push_body(aggregate("k", 5), target_uuid="web-1"))
    for _ in range(3):
        clock.advance(3 * DAY)
        gateway_.housekeeping.run()
        post(client, push_body(aggregate("k", 5), target_uuid="web-1"))
    post(client, push_body(aggregate("k", 6), target_uuid="web-1"))
    assert counts(scrape(client)) == {"k": 6}

    clock.advance(30 * DAY)  # past retention: the error leaves the export, its counter stays
    gateway_.housekeeping.run()
    post(client, push_body(aggregate("k", 6), target_uuid="web-1"))
    assert counts(scrape(client)) == {}
    post(client, push_body(aggregate("k", 7), target_uuid="web-1"))
    assert counts(scrape(client)) == {"k": 7}


def test_counters_beyond_the_cap_are_evicted_least_recently_pushed_first(gateway, clock):
    """The one documented case where a re-pushed state counts again: its counter was evicted
    because the group's cap of counters was reached by processes that pushed since."""
    client, gateway_ = gateway(MAX_COUNTERS_PER_GROUP=3, PRUNE_INTERVAL_SECONDS=30 * 86400)
    for process in ("p1", "p2", "p3", "p4"):
        post(client, push_body(aggregate("k", 1), target_uuid=process), group="g")
        clock.advance(DAY)  # more than planning.COUNTER_TOUCH_NS: p1's push below is newer
    post(client, push_body(aggregate("k", 1), aggregate("j", 1), target_uuid="p1"), group="g")
    pruned = gateway_.housekeeping.run()
    assert pruned["evicted_counters"] == 2  # 5 counters (p1 has two): p2's and p3's go
    assert counts(scrape(client, "g")) == {"k": 4, "j": 1}
    for process in ("p1", "p4"):  # remembered: nothing added
        post(client, push_body(aggregate("k", 1), target_uuid=process), group="g")
    assert counts(scrape(client, "g")) == {"k": 4, "j": 1}
    post(client, push_body(aggregate("k", 1), target_uuid="p2"), group="g")  # forgotten
    assert counts(scrape(client, "g")) == {"k": 5, "j": 1}


def test_keys_past_the_cap_are_dropped_counted_and_reported(gateway, clock):
    client, gateway_ = gateway(MAX_KEYS_PER_GROUP=3)
    response = post(client, push_body(*(aggregate(f"k{i}", 1) for i in range(5))), group="g")
    assert response.status_code == 200
    assert response.get_json()["aggregates"] == 3
    assert response.get_json()["dropped_keys"] == 2
    assert counts(scrape(client, "g")) == {"k0": 1, "k1": 1, "k2": 1}
    # Known keys still count; the gateway's own report is not capped.
    post(client, push_body(aggregate("k1", 4), aggregate("k9", 1)), group="g")
    assert counts(scrape(client, "g")) == {"k0": 1, "k1": 5, "k2": 1}

    clock.advance(61 * 10**9)
    gateway_.housekeeping.run_if_due()  # the next housekeeping reports the drops
    report = by_key(scrape(client))["KeysDropped@periskop-pushgateway"]
    assert report["total_count"] == 3
    assert "group 'g'" in report["latest_errors"][0]["error"]["message"]


def test_hidden_errors_beyond_the_cap_are_evicted_oldest_first(gateway, clock):
    client, gateway_ = gateway(MAX_KEYS_PER_GROUP=2)
    for batch in range(3):
        keys = (f"a{batch}", f"b{batch}")
        post(client, push_body(*(aggregate(key, 1) for key in keys)), group="g")
        for key in keys:
            assert client.delete(f"/services/g/-/errors/{key}").status_code == 200
        clock.advance(DAY)
    gateway_.housekeeping.run()
    status = client.get("/-/status").get_json()
    [group] = [g for g in status["groups"] if g["name"] == "g"]
    assert group == {**group, "exported_keys": 0, "stored_keys": 2}
    # The newest two kept their counts; an evicted one starts again.
    post(client, push_body(aggregate("a2", 1), aggregate("a0", 1)), group="g")
    assert counts(scrape(client, "g")) == {"a2": 2, "a0": 1}


def test_housekeeping_prunes_at_most_once_per_interval(gateway, clock):
    client, gateway_ = gateway(PRUNE_INTERVAL_SECONDS=2 * 86400, RETENTION_SECONDS=86400)
    housekeeping = gateway_.housekeeping
    post(client, push_body(aggregate("a", 1)))
    assert housekeeping.run_if_due() is not None  # prunes now, next in two days
    clock.advance(DAY * 3 // 2)
    post(client, push_body(aggregate("b", 1)))
    assert housekeeping.run_if_due() is None
    assert counts(scrape(client)) == {"a": 1, "b": 1}  # "a" expired, not yet pruned
    clock.advance(DAY * 6 // 10)
    post(client, push_body(aggregate("c", 1)))
    assert housekeeping.run_if_due() is not None
    assert counts(scrape(client)) == {"b": 1, "c": 1}


def test_prune_command_for_cron(database_url):
    env = {
        "PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url,
        "PERISKOP_PUSHGATEWAY_RETENTION_SECONDS": "1",
        "PATH": "",
    }
    from periskop_pushgateway import create_app

    client = create_app({"DATABASE_URL": database_url}).test_client()
    post(client, push_body(aggregate("k", 1)))
    time.sleep(1.1)
    result = subprocess.run(
        [sys.executable, "-m", "periskop_pushgateway", "prune"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "expired_aggregates=1" in result.stdout
    assert counts(scrape(client)) == {}


def test_storage_stays_bounded_over_simulated_months(gateway, clock, database_url):
    """100,000 short-lived processes (40,000 on PostgreSQL) over 20 simulated days, each pushing
    a few keys from a pool that keeps changing: row counts stay within the documented bounds."""
    cap, per_key, counter_cap = 50, 10, 2000
    client, gateway_ = gateway(
        MAX_KEYS_PER_GROUP=cap,
        MAX_COUNTERS_PER_GROUP=counter_cap,
        # A prune every 10 simulated minutes: 2,880 of them, not 28,800 (each costs round trips
        # on PostgreSQL); the bounds below allow for what pushes add in between.
        PRUNE_INTERVAL_SECONDS=600,
        # Durability is not what this test is about: no waiting for the disk.
        SQLITE_SYNCHRONOUS="OFF",
        DATABASE_URL=database_url
        + ("%20-csynchronous_commit%3Doff" if TEST_DATABASE == "postgresql" else ""),
    )
    store = gateway_.store
    # Fewer on PostgreSQL, where every push is round trips to the server: the same bounds.
    processes_per_day = 5000 if TEST_DATABASE == "sqlite" else 2000
    bounds_checked = 0
    for day in range(20):
        for process in range(processes_per_day):
            keys = [f"Error{day}-{(process + i) % 40}" for i in range(3)]
            push = normalize_push(
                {
                    "target_uuid": f"{day}-{process}",
                    "aggregated_errors": [
                        {
                            "aggregation_key": key,
                            "total_count": 1,
                            "severity": None,
                            "created_at": None,
                            "latest_errors": [
                                {
                                    "error": {
                                        "class": "E",
                                        "message": str(process),
                                        "stacktrace": None,
                                        "cause": None,
                                    },
                                    "uuid": None,
                                    "timestamp": None,
                                    "severity": None,
                                    "http_context": None,
                                }
                            ],
                        }
                        for key in keys
                    ],
                },
                clock.now,
            )
            store.ingest("batch", push)
            gateway_.housekeeping.run_if_due()
            clock.advance(DAY // processes_per_day)
        rows = row_counts(store)
        assert rows["aggregates"] <= 2 * cap
        assert rows["occurrences"] <= per_key * rows["aggregates"]
        # At most the cap, and what pushes add between two prunes (3 keys each).
        assert rows["process_counters"] <= counter_cap + 3 * (processes_per_day // 144 + 1)
        bounds_checked += 1
    assert bounds_checked == 20


def row_counts(store):
    from sqlalchemy import func, select

    from periskop_pushgateway.storage.models import aggregates, occurrences, process_counters

    with store.engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar()
            for table in (aggregates, process_counters, occurrences)
        }


def test_the_retired_counter_ttl_is_ignored_and_said_so_at_start(make_app, monkeypatch, caplog):
    monkeypatch.setenv("PERISKOP_PUSHGATEWAY_CLIENT_COUNTER_TTL_SECONDS", "60")
    make_app()
    [record] = [r for r in caplog.records if "CLIENT_COUNTER_TTL_SECONDS" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert "MAX_COUNTERS_PER_GROUP" in record.getMessage()


def test_a_push_that_would_create_a_group_past_the_cap_is_refused_and_reported(gateway, clock):
    client, gateway_ = gateway(MAX_GROUPS=3)
    for name in ("a", "b", "c"):
        assert post(client, push_body(aggregate("k", 1)), group=name).status_code == 200
    refused = post(client, push_body(aggregate("k", 1)), group="d")
    assert refused.status_code == 403
    assert "MAX_GROUPS" in refused.get_json()["description"]
    assert post(client, push_body(aggregate("k", 1)), group="a").status_code == 200
    assert post(client, push_body(aggregate("k", 1))).status_code == 200  # the default group
    report = by_key(scrape(client))["TooManyGroups@periskop-pushgateway"]
    assert "group 'd'" in report["latest_errors"][0]["error"]["message"]
    names = {g["name"] for g in client.get("/-/status").get_json()["groups"]}
    assert names == {None, "a", "b", "c"}


def test_groups_that_export_nothing_are_deleted_after_retention(gateway, clock):
    client, gateway_ = gateway(MAX_GROUPS=2)
    post(client, push_body(aggregate("k", 1), target_uuid="p"), group="old")
    post(client, push_body(aggregate("k", 1)), group="active")
    old_uuid = scrape(client, "old")["target_uuid"]
    clock.advance(6 * DAY)
    post(client, push_body(aggregate("k", 2)), group="active")
    clock.advance(2 * DAY)  # "old" is past retention: its key expires, then the group goes
    pruned = gateway_.housekeeping.run()
    assert pruned["deleted_groups"] == 1
    assert pruned["evicted_aggregates"] == 1
    names = {g["name"] for g in client.get("/-/status").get_json()["groups"]}
    assert names == {"active"}
    # Room for a new group; the old name, pushed again, is a new target for Periskop.
    assert (
        post(client, push_body(aggregate("k", 1), target_uuid="p"), group="old").status_code == 200
    )
    assert scrape(client, "old")["target_uuid"] != old_uuid
    assert counts(scrape(client, "old")) == {"k": 1}
    assert counts(scrape(client, "active")) == {"k": 3}
