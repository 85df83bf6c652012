"""`periskop-pushgateway periskop-config` prints the Periskop server's services, one per group,
each pointing at that group's export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from .helpers import aggregate, push_body
from .servers import gunicorn_on_new_database

GROUPS = ["", "nightly-report", "billing.export_v2", "-odd"]


def periskop_config(database_url, *options):
    return subprocess.run(
        [sys.executable, "-m", "periskop_pushgateway", "periskop-config", *options],
        env={**os.environ, "PERISKOP_PUSHGATEWAY_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
    )


def key_of(group):
    return f"Error@{group or 'default'}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with gunicorn_on_new_database(tmp_path_factory.mktemp("periskop-config")) as server:
        for group in GROUPS:
            path = f"/services/{group}/errors" if group else "/errors"
            body = json.dumps(push_body(aggregate(key_of(group), 1)))
            assert requests.post(server.url + path, data=body, timeout=10).status_code == 200
        yield server


def test_every_group_is_a_service_scraped_at_its_own_export(gateway):
    address = gateway.url.removeprefix("http://")
    result = periskop_config(gateway.database_url, "--address", address)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    names = [service["name"] for service in services]
    assert names == ["periskop-pushgateway", "-odd", "billing.export_v2", "nightly-report"]
    target_uuids = set()
    for service, group in zip(services, ["", *sorted(GROUPS[1:])], strict=True):
        # Exactly the keys the Periskop server reads (it parses its config strictly).
        assert set(service) == {"name", "static_configs", "scraper"}
        assert service["static_configs"] == [{"targets": [address]}]
        assert service["scraper"]["refresh_interval"] == "30s"
        response = requests.get(f"http://{address}{service['scraper']['endpoint']}", timeout=10)
        assert response.status_code == 200
        export = response.json()
        assert [a["aggregation_key"] for a in export["aggregated_errors"]] == [key_of(group)]
        target_uuids.add(export["target_uuid"])
    assert len(target_uuids) == len(GROUPS)


def test_refresh_interval_and_default_name_can_be_chosen(gateway):
    result = periskop_config(
        gateway.database_url,
        "--address",
        "[::1]:7878",
        "--refresh-interval",
        "1m30s",
        "--default-name",
        "gateway-own",
    )
    assert result.returncode == 0, result.stderr
    [default, *_] = yaml.safe_load(result.stdout)["services"]
    assert default == {
        "name": "gateway-own",
        "static_configs": [{"targets": ["[::1]:7878"]}],
        "scraper": {"endpoint": "/-/errors", "refresh_interval": "1m30s"},
    }


@pytest.mark.parametrize(
    "options, message",
    [
        (["--address", "http://gw:7878"], "HOST:PORT"),
        (["--address", "gw"], "HOST:PORT"),
        (["--address", "gw:7878", "--refresh-interval", "30"], "duration"),
        (["--address", "gw:7878", "--default-name", "nightly-report"], "choose another"),
    ],
)
def test_what_periskop_would_not_take_is_refused(gateway, options, message):
    result = periskop_config(gateway.database_url, *options)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.sqlite_only
def test_a_missing_database_is_said_so_and_not_created(tmp_path):
    path = tmp_path / "typo.db"
    result = periskop_config(f"sqlite:///{path}", "--address", "gw:7878")
    assert result.returncode == 1
    assert f"no database at {path}" in result.stderr
    assert not Path(path).exists()
