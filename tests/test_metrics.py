"""GET /metrics in the Prometheus text format."""

import re

from werkzeug.security import generate_password_hash

from .helpers import aggregate, occurrence, post, push_body
from .test_auth import basic


def sample(text, name, **labels):
    """The value of one sample, 0 when it is absent."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{re.escape('{' + label_text + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def scrape_metrics(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_push_outcomes_and_what_they_stored_are_counted(client):
    before = scrape_metrics(client)
    post(client, push_body(aggregate("k", 3, [occurrence(), occurrence()]), target_uuid="p"))
    post(client, push_body(aggregate("k", 3), target_uuid="p"))
    post(client, push_body(aggregate("k", 2), aggregate("j", 1), target_uuid="p"))  # k is late
    client.post("/errors", data="{bad")
    client.post("/errors", data=b"x", headers={"Content-Encoding": "br"})
    after = scrape_metrics(client)

    def grew(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("periskop_pushgateway_pushes_total", outcome="accepted") == 3
    assert grew("periskop_pushgateway_stale_keys_total") == 1
    assert grew("periskop_pushgateway_pushes_total", outcome="invalid") == 1
    assert grew("periskop_pushgateway_pushes_total", outcome="unsupported_encoding") == 1
    assert grew("periskop_pushgateway_occurrences_stored_total") == 2
    if sample(before, "periskop_pushgateway_count_increase_total") < 2**50:
        # (Earlier tests in the same process may have added counts too large for a float
        # to show an increase of 3.)
        assert grew("periskop_pushgateway_count_increase_total") == 4
    assert grew("periskop_pushgateway_push_duration_seconds_count") == 3


def test_stored_data_is_read_from_the_database(client):
    post(client, push_body(aggregate("a", 1), aggregate("b", 1)), group="g")
    client.delete("/services/g/-/errors/b")
    text = scrape_metrics(client)
    # The default group holds the gateway's own report of nothing yet: only "g" counts.
    assert sample(text, "periskop_pushgateway_groups") == 1
    assert sample(text, "periskop_pushgateway_aggregates", state="exported") == 1
    assert sample(text, "periskop_pushgateway_aggregates", state="hidden") == 1
    assert sample(text, "periskop_pushgateway_database_size_bytes") > 0


def test_dropped_keys_and_unauthorized_pushes_are_counted(make_app):
    client = make_app(
        MAX_KEYS_PER_GROUP=1, PUSH_USERNAME="jobs", PUSH_PASSWORD_HASH=generate_password_hash("pw")
    ).test_client()
    before = scrape_metrics(client)
    client.post("/errors", data='{"aggregated_errors": []}')
    client.post(
        "/errors",
        data='{"aggregated_errors": [{"aggregation_key": "a"},{"aggregation_key": "b"}]}',
        headers=basic("jobs", "pw"),
    )
    after = scrape_metrics(client)
    assert (
        sample(after, "periskop_pushgateway_pushes_total", outcome="unauthorized")
        - sample(before, "periskop_pushgateway_pushes_total", outcome="unauthorized")
        == 1
    )
    assert (
        sample(after, "periskop_pushgateway_dropped_keys_total")
        - sample(before, "periskop_pushgateway_dropped_keys_total")
        == 1
    )


def test_throttled_pushes_are_counted(make_app):
    client = make_app(
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH=generate_password_hash("pw"),
        AUTH_FAILURES_PER_MINUTE=1,
    ).test_client()
    before = scrape_metrics(client)
    for _ in range(3):  # one checked and refused, then two refused unchecked
        client.post("/errors", data='{"aggregated_errors": []}', headers=basic("jobs", "guess"))
    after = scrape_metrics(client)

    def grew(outcome):
        return sample(after, "periskop_pushgateway_pushes_total", outcome=outcome) - sample(
            before, "periskop_pushgateway_pushes_total", outcome=outcome
        )

    assert grew("unauthorized") == 1
    assert grew("throttled") == 2
