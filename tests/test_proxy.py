"""X-Forwarded-* headers are trusted only when the gateway is told a proxy stands in front."""

import logging

import pytest

from .helpers import aggregate, post, push_body

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def pushed_from(client, caplog):
    with caplog.at_level(logging.INFO, logger="periskop_pushgateway"):
        client.post(
            "/errors",
            data='{"aggregated_errors": [{"aggregation_key": "k", "total_count": 1}]}',
            headers=FORWARDED,
            environ_base={"REMOTE_ADDR": "127.0.0.7"},
        )
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("push ")]
    return next(word for word in line.split() if word.startswith("from="))


@pytest.mark.parametrize("hops, address", [(0, "from=127.0.0.7"), (1, "from=203.0.113.9")])
def test_forwarded_for_is_trusted_only_behind_configured_proxies(make_app, caplog, hops, address):
    client = make_app(PROXY_HOPS=hops).test_client()
    assert pushed_from(client, caplog) == address
    assert post(client, push_body(aggregate("k", 1))).status_code == 200
