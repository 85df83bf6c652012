"""The periskop-client package from PyPI, pushing with its own push_to_gateway."""

import pytest
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter
from periskop_client.models import HTTPContext

from .helpers import counts
from .servers import gunicorn_on_new_database
from .test_gunicorn import scrape


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-client")
    with gunicorn_on_new_database(folder) as server:
        yield server


def fail(exception):
    raise exception


def report(collector, exception, times=1, context=None):
    for _ in range(times):
        try:
            fail(exception)
        except Exception as caught:  # noqa: BLE001 - the client takes any exception
            if context:
                collector.report_with_context(caught, context)
            else:
                collector.report(caught)


def push_like_a_job(url):
    """A job's pushes: 3 ValueErrors, 2 KeyErrors later, and its state pushed again at exit."""
    collector = ExceptionCollector()
    exporter = ExceptionExporter(collector)
    report(collector, ValueError("bad value"), times=3)
    exporter.push_to_gateway(url)
    report(collector, KeyError("missing"), times=2)
    exporter.push_to_gateway(url)
    exporter.push_to_gateway(url)  # pushed again at exit
    return collector


def test_python_client_pushes_are_counted_once(gateway):
    push_like_a_job(gateway.url)

    exported = scrape(gateway.url).json()
    keys = {a["aggregation_key"].split("@")[0]: a for a in exported["aggregated_errors"]}
    assert {name: a["total_count"] for name, a in keys.items()} == {"ValueError": 3, "KeyError": 2}
    occurrence = keys["ValueError"]["latest_errors"][0]
    assert occurrence["error"]["message"] == "bad value"
    assert occurrence["error"]["stacktrace"][0] == "Traceback (most recent call last):"
    assert occurrence["timestamp"].endswith("Z")


def test_python_client_reaches_a_group_through_its_address(gateway):
    collector = ExceptionCollector()
    context = HTTPContext(
        request_method="POST",
        request_url="http://svc/job",
        request_headers={"Accept": "application/json"},
        request_body="{}",
    )
    report(collector, RuntimeError("nightly"), times=2, context=context)
    ExceptionExporter(collector).push_to_gateway(gateway.url + "/services/nightly-report")

    exported = scrape(gateway.url, "nightly-report").json()
    assert list(counts(exported).values()) == [2]
    occurrence = exported["aggregated_errors"][0]["latest_errors"][0]
    assert occurrence["http_context"] == {
        "request_method": "POST",
        "request_url": "http://svc/job",
        "request_headers": {"Accept": "application/json"},
        "request_body": "{}",
    }
    assert exported["target_uuid"] != scrape(gateway.url).json()["target_uuid"]
