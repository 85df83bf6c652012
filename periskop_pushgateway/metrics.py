"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR, which
/metrics adds up (prometheus_client's multiprocess mode). The directory must be chosen before
prometheus_client is first imported, so the gunicorn configuration sets it (see
prepare_multiprocess_dir); a single process (tests, `flask run`) keeps samples in memory.
What the database holds (aggregates, groups, size) is read from it when /metrics is scraped.
"""

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from sqlalchemy import Row

    from .storage.store import Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> str:
    """In the gunicorn master, before the app is loaded: choose the directory workers share,
    or empty the configured one (samples of a previous run would be added in)."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
        return configured
    directory = tempfile.mkdtemp(prefix="periskop-pushgateway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def worker_exited(pid: int) -> None:
    """gunicorn child_exit hook: a dead worker's live gauges must not linger."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# Imported only now, after the functions above may have set the directory.
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

PUSHES = Counter(
    "periskop_pushgateway_pushes",
    "Pushes received, by outcome: accepted, invalid, malformed, too_many_groups, timed_out, "
    "too_large, unsupported_encoding, unauthorized, throttled, unavailable.",
    ["outcome"],
)
PASSWORD_CHECKS = Counter(
    "periskop_pushgateway_password_checks",
    "Password hash checks made (slow on purpose), by outcome: accepted, refused.",
    ["outcome"],
)
CREDENTIALS_THROTTLED = Counter(
    "periskop_pushgateway_credentials_throttled",
    "Requests refused with 429 before a password hash check, by reason: failures (their user "
    "name failed too often from their address), budget (the gateway's checks a second were "
    "spent).",
    ["reason"],
)
OCCURRENCES_STORED = Counter(
    "periskop_pushgateway_occurrences_stored", "Pushed occurrences that were new and stored."
)
COUNT_INCREASE = Counter(
    "periskop_pushgateway_count_increase", "What pushes added to the exported counts."
)
DROPPED_KEYS = Counter(
    "periskop_pushgateway_dropped_keys",
    "New aggregation keys not stored because their group held its maximum of keys.",
)
STALE_KEYS = Counter(
    "periskop_pushgateway_stale_keys",
    "Pushed keys whose count was below the highest the same process had pushed before: "
    "pushes that arrived out of order, which add nothing.",
)
PRUNED_ROWS = Counter(
    "periskop_pushgateway_pruned_rows",
    "Rows pruned: expired aggregates, evicted counters, evicted aggregates.",
    ["kind"],
)
PUSH_DURATION = Histogram(
    "periskop_pushgateway_push_duration_seconds",
    "Time to handle a push, from its first byte read to its answer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

WRITES_PER_COMMIT = Histogram(
    "periskop_pushgateway_writes_per_commit",
    "Writes (pushes, resolves, prunes) committed together in one SQLite transaction by a "
    "worker's threads (group commit).",
    buckets=(1, 2, 4, 8, 16, 32),
)

PUSHES_PER_FLUSH = Histogram(
    "periskop_pushgateway_pushes_per_flush",
    "Pushes a sync worker acknowledged after one flush of the SQLite WAL file "
    "(SQLITE_SYNCHRONOUS=FULL): the pushes it took in a row share one.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)


class StoredDataCollector:
    """Gauges read from the database at scrape time, so every worker reports the same."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    def collect(self) -> Iterator["Metric"]:
        rows, size = self.store.status()
        groups = GaugeMetricFamily(
            "periskop_pushgateway_groups", "Groups that were ever pushed to."
        )
        groups.add_metric([], len(rows))
        stored = GaugeMetricFamily(
            "periskop_pushgateway_aggregates",
            "Aggregates stored, by state: exported, or hidden (resolved or expired).",
            labels=["state"],
        )
        exported = sum(row.exported for row in rows)
        stored.add_metric(["exported"], exported)
        stored.add_metric(["hidden"], sum(row.stored for row in rows) - exported)
        yield groups
        yield stored
        yield from _per_group(rows)
        if size is not None:
            database = GaugeMetricFamily(
                "periskop_pushgateway_database_size_bytes", "Size of the database."
            )
            database.add_metric([], size)
            yield database
        budget_use = self.store.budget_use()
        if budget_use is not None:
            used, budget = budget_use
            in_use = GaugeMetricFamily(
                "periskop_pushgateway_database_used_bytes",
                "Bytes of the SQLite database's pages in use (its free pages left out).",
            )
            in_use.add_metric([], used)
            limit = GaugeMetricFamily(
                "periskop_pushgateway_database_limit_bytes",
                "What the pages in use may take: MAX_DATABASE_BYTES less the WAL's limit.",
            )
            limit.add_metric([], budget.limit_bytes)
            yield in_use
            yield limit


def _per_group(rows: Sequence["Row"]) -> Iterator[GaugeMetricFamily]:
    """Gauges per group, labelled with its name ("" for the default group: groups are bounded
    by MAX_GROUPS, and so is the label set). A job that stops pushing shows as a last push
    time that no longer moves (push times are kept to within a minute, store.py)."""
    last_push = GaugeMetricFamily(
        "periskop_pushgateway_last_push_timestamp_seconds",
        "When a push to the group was last accepted, in seconds since the epoch (to within a "
        "minute).",
        labels=["group"],
    )
    last_rejected = GaugeMetricFamily(
        "periskop_pushgateway_last_rejected_push_timestamp_seconds",
        "When a push to the group was last rejected (4xx), in seconds since the epoch.",
        labels=["group"],
    )
    keys = GaugeMetricFamily(
        "periskop_pushgateway_exported_keys",
        "Aggregation keys the group exports.",
        labels=["group"],
    )
    errors = GaugeMetricFamily(
        "periskop_pushgateway_exported_errors",
        "The sum of the total_count the group exports.",
        labels=["group"],
    )
    for row in rows:
        if row.last_push_ns is not None:
            last_push.add_metric([row.name], row.last_push_ns / 1e9)
        if row.last_rejected_ns is not None:
            last_rejected.add_metric([row.name], row.last_rejected_ns / 1e9)
        keys.add_metric([row.name], row.exported)
        errors.add_metric([row.name], row.exported_count)
    yield from (last_push, last_rejected, keys, errors)


def render_metrics(store: "Store") -> tuple[bytes, str]:
    """(body, content type) of the /metrics page."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in (
            PUSHES,
            OCCURRENCES_STORED,
            COUNT_INCREASE,
            DROPPED_KEYS,
            STALE_KEYS,
            PRUNED_ROWS,
            PUSH_DURATION,
        ):
            registry.register(collector)
    registry.register(StoredDataCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
