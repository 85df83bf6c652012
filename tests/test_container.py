"""The container image: the repository's Dockerfile built with podman and run as a user runs
it, its SQLite database on a volume, pushed to by the real periskop-client."""

import os

import psycopg
import pytest
import requests

from . import container
from .conftest import POSTGRESQL_URL, TEST_DATABASE, new_postgresql_url
from .container import Container, Volume
from .helpers import counts
from .pushers import check_export, run_pushers, stop_pushers, wait_for_acknowledged_pushes
from .test_dockerfile import image_user
from .test_real_client import push_like_a_job

# CI installs podman (.ci/run): there, a missing podman is a failure, not a skip.
pytestmark = [
    pytest.mark.skipif(
        not container.PODMAN and not os.environ.get("CI"), reason="podman is not installed"
    ),
    # The image is the same whatever database the suite runs on: the PostgreSQL pass leaves it
    # to the SQLite pass (which runs its PostgreSQL test too), and CI stays within its time.
    pytest.mark.skipif(
        TEST_DATABASE != "sqlite", reason="the image is tested once, in the SQLite pass"
    ),
]

CLIENTS = 4
GATEWAY_USER = str(image_user())


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0:
        pytest.skip("podman needs root here (runc, cgroupfs) and debootstrap does too")
    container.ensure_base_image()
    return container.build_image()


@pytest.fixture
def postgresql_url(image):
    try:
        return new_postgresql_url()
    except psycopg.OperationalError as error:
        # CI starts the PostgreSQL server: there, its absence is a failure, not a skip.
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server at {POSTGRESQL_URL}: {error}")


@pytest.fixture
def volume(image):
    with Volume() as created:
        yield created


def export(url):
    response = requests.get(url + "/-/errors", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_pushes_and_target_uuid_outlive_the_container(volume):
    with Container(volume) as gateway:
        push_like_a_job(gateway.url)
        before = export(gateway.url)
        assert sorted(counts(before).values()) == [2, 3]
        # The pages' templates and static files were installed with the package.
        page = requests.get(gateway.url + "/-/keys", timeout=10)
        assert page.status_code == 200 and "ValueError" in page.text, page.text[:500]
        assert "/-/static/pages.css" in page.text
        assert requests.get(gateway.url + "/-/static/pages.css", timeout=10).status_code == 200

        gateway.stop()
        gateway.start()
        assert export(gateway.url) == before

    # A new container on the same volume: the state lives on the volume, not in a container.
    with Container(volume) as replacement:
        assert export(replacement.url) == before


def test_the_gateway_runs_as_its_own_user_on_a_read_only_root(volume):
    # As the Kubernetes manifests run it: nothing written outside /data and /tmp (a tmpfs).
    with Container(volume, options=["--read-only"]) as gateway:
        push_like_a_job(gateway.url)
        assert sorted(counts(export(gateway.url)).values()) == [2, 3]
        users = gateway.inspect("{{.Config.User}}")
        processes = container.podman("top", gateway.name, "huser", "args").stdout.splitlines()
        assert users.split(":")[0] == GATEWAY_USER
        assert len(processes) >= 3, processes  # a header, gunicorn's master, its workers
        assert all(line.split()[0] == GATEWAY_USER for line in processes[1:]), processes
        assert gateway.exec("stat", "-c", "%u", "/data/gateway.db").strip() == GATEWAY_USER


def test_the_healthcheck_asks_the_liveness_endpoint(volume):
    with Container(volume) as gateway:
        healthcheck = gateway.inspect("{{json .Config.Healthcheck.Test}}")
        assert "/-/healthy" in healthcheck
        # Runs the image's HEALTHCHECK command inside the container: 0 when it passes.
        done = container.podman("healthcheck", "run", gateway.name, check=False)
        assert done.returncode == 0, (done.stdout, done.stderr, gateway.logs())


def test_the_image_holds_both_database_drivers_and_no_installer(image):
    probe = "import importlib.util as u; print(*(bool(u.find_spec(m)) for m in %r))"
    modules = ["sqlite3", "psycopg", "pip", "setuptools"]
    done = container.podman(
        "run", "--rm", *container.LIMITS, image, "python3", "-c", probe % modules
    )
    assert done.stdout.split() == ["True", "True", "False", "False"]


def test_stopping_under_load_loses_no_acknowledged_push(volume):
    with Container(volume) as gateway:
        pushers, stop = run_pushers(gateway.url, CLIENTS)
        try:
            wait_for_acknowledged_pushes(pushers, more_than=5)
            target_uuid = export(gateway.url)["target_uuid"]
            # SIGTERM while the clients push: gunicorn finishes what its workers hold and exits
            # by itself, with 0; a container killed when its grace period ran out exits 137.
            gateway.stop()
            assert gateway.exit_code() == 0, gateway.logs()
            floor = {p.key: p.acknowledged for p in pushers}

            gateway.start()
            restarted = export(gateway.url)
            assert restarted["target_uuid"] == target_uuid
            assert all(counts(restarted).get(key, 0) >= n for key, n in floor.items())
            wait_for_acknowledged_pushes(pushers, more_than=5)
        finally:
            stop_pushers(pushers, stop)
        for pusher in pushers:
            pusher.finish()
        check_export(export(gateway.url), pushers)
        # The clients did meet the stop: the bounds above were put to work.
        assert any(pusher.failures for pusher in pushers)


def test_replicas_on_postgresql_export_the_same_state(postgresql_url):
    # The Kubernetes Deployment's premise, with the image's own PostgreSQL driver: push to
    # one replica, scrape another.
    settings = {"PERISKOP_PUSHGATEWAY_DATABASE_URL": postgresql_url}
    with Container(env=settings) as first, Container(env=settings) as second:
        push_like_a_job(first.url)
        assert sorted(counts(export(second.url)).values()) == [2, 3]
        assert export(second.url) == export(first.url)
