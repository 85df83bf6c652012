"""Per-group gauges in /metrics, read from the database at scrape time: when each group last
had a push accepted and rejected, what it exports. Whichever worker took the push, every
worker shows the same."""

import json
import re
import time
from pathlib import Path

import pytest
import requests
import yaml

from .helpers import aggregate, post, push_body
from .servers import gunicorn_on_new_database
from .test_metrics import sample, scrape_metrics

# The alerting rules the manual suggests (docs/observability.md).
OBSERVABILITY = (Path(__file__).resolve().parent.parent / "docs" / "observability.md").read_text()
LAST_PUSH = "periskop_pushgateway_last_push_timestamp_seconds"
LAST_REJECTED = "periskop_pushgateway_last_rejected_push_timestamp_seconds"
KEYS = "periskop_pushgateway_exported_keys"
ERRORS = "periskop_pushgateway_exported_errors"


def has_sample(text, name, **labels):
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{label_text}}} " in text


def test_exported_keys_and_counts_per_group(client):
    post(client, push_body(aggregate("a", 3), aggregate("b", 2), target_uuid="p"), group="g")
    post(client, push_body(aggregate("c", 7)))
    client.delete("/services/g/-/errors/b")
    text = scrape_metrics(client)
    assert sample(text, KEYS, group="g") == 1
    assert sample(text, ERRORS, group="g") == 3
    assert sample(text, KEYS, group="") == 1
    assert sample(text, ERRORS, group="") == 7


def test_last_push_times_per_group(client):
    before = time.time()
    post(client, push_body(aggregate("a", 1)), group="g")
    after = time.time()
    text = scrape_metrics(client)
    assert before - 1 <= sample(text, LAST_PUSH, group="g") <= after + 1
    assert not has_sample(text, LAST_REJECTED, group="g")

    before = time.time()
    assert post(client, "{bad", group="g").status_code == 400
    after = time.time()
    later = scrape_metrics(client)
    assert before - 1 <= sample(later, LAST_REJECTED, group="g") <= after + 1
    assert sample(later, LAST_PUSH, group="g") == sample(text, LAST_PUSH, group="g")


def test_the_gateways_own_reports_are_no_push_to_the_default_group(client):
    # A rejected push is reported in the default group: that must not look like a push to it.
    assert post(client, "{bad", group="g").status_code == 400
    assert not has_sample(scrape_metrics(client), LAST_PUSH, group="")

    post(client, push_body(aggregate("a", 1)))
    pushed = sample(scrape_metrics(client), LAST_PUSH, group="")
    assert pushed > 0
    assert post(client, "{bad", group="g").status_code == 400
    assert sample(scrape_metrics(client), LAST_PUSH, group="") == pushed


def test_a_rejected_push_creates_no_group(client):
    assert post(client, "{bad", group="never-accepted").status_code == 400
    text = scrape_metrics(client)
    assert "never-accepted" not in text


def test_huge_counts_add_up_as_floats(client):
    # 2,000 counts of 2^53 (two pushes of MAX_AGGREGATES) pass 2^63.
    for first in (0, 1000):
        keys = range(first, first + 1000)
        post(client, push_body(*(aggregate(f"k{i}", 2**53) for i in keys)), group="g")
    assert sample(scrape_metrics(client), ERRORS, group="g") == pytest.approx(2000 * 2.0**53)


def test_every_worker_shows_pushes_any_worker_took(tmp_path):
    with gunicorn_on_new_database(tmp_path, workers=3) as gateway:
        before = time.time()
        body = json.dumps(push_body(aggregate("k", 5), target_uuid="job"))
        for _ in range(6):
            assert requests.post(gateway.url + "/services/g/errors", data=body).status_code == 200
            bad = requests.post(gateway.url + "/services/g/errors", data="{bad")
            assert bad.status_code == 400
        scrapes = [requests.get(gateway.url + "/metrics").text for _ in range(12)]
        seen = {
            (
                sample(text, LAST_PUSH, group="g"),
                sample(text, LAST_REJECTED, group="g"),
                sample(text, KEYS, group="g"),
                sample(text, ERRORS, group="g"),
            )
            for text in scrapes
        }
        assert len(seen) == 1
        [(pushed, rejected, keys, errors)] = seen
        assert pushed >= before - 1 and rejected >= before - 1
        assert (keys, errors) == (1, 5)


def test_the_documented_alerting_rules_use_metrics_the_gateway_serves(client):
    [rules] = [
        yaml.safe_load(block)
        for block in re.findall(r"^```yaml\n(.*?)```", OBSERVABILITY, re.M | re.S)
        if "alert:" in block
    ]
    post(client, push_body(aggregate("a", 1)), group="nightly-report")
    post(client, "{bad", group="nightly-report")
    served = set(re.findall(r"^(\w+)\{", scrape_metrics(client), re.M))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in exprs for name in re.findall(r"periskop_pushgateway_\w+", expr)}
    assert named and named <= served
