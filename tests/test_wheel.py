"""What is tested is what ships: a wheel built from the checkout, installed with the lock into an
environment of its own (as the README's first command installs the gateway), holds the very
versions the tests run on, and serves a push, a scrape and the pages."""

import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import requests
from packaging.utils import canonicalize_name

from .helpers import aggregate, occurrence, push_body
from .servers import REPO, Gunicorn

# Built once, on one database's pass: packaging is the same for both.
pytestmark = pytest.mark.sqlite_only

LOCK = REPO / "requirements" / "lock.txt"
# What a fresh environment holds besides the gateway and its dependencies.
_TOOLING = {"pip", "setuptools", "wheel", "periskop-pushgateway"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the wheel built from the working tree."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    # The working tree's files, tracked or new, without what a build or an install left.
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (os.fsdecode(f) for f in files)):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    dist = folder / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", dist, source], check=True, timeout=600)
    [wheel] = dist.glob("*.whl")
    environment = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", environment], check=True, timeout=120)
    subprocess.run(
        [environment / "bin" / "pip", "install", "-q", "-c", LOCK, wheel], check=True, timeout=900
    )
    return environment


def distributions(environment):
    listed = subprocess.run(
        [environment / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = (line.split("==") for line in listed.splitlines() if "==" in line)
    return {canonicalize_name(name): version for name, version in pins}


def test_the_shipped_environment_holds_the_versions_the_tests_run_on(installed):
    shipped = distributions(installed)
    assert "flask" in shipped and "marshmallow" in shipped
    differing = {
        name: (version, metadata.version(name))
        for name, version in shipped.items()
        if name not in _TOOLING and version != metadata.version(name)
    }
    assert not differing, f"(shipped, tested): {differing}"


def test_the_wheel_serves_a_push_a_scrape_and_the_pages(installed, tmp_path):
    # Started away from the source tree (gunicorn puts its working directory on the path),
    # so the package, its templates, static files and migrations all come from the wheel.
    server = Gunicorn(
        f"sqlite:///{tmp_path / 'gateway.db'}",
        command=[
            str(installed / "bin" / "periskop-pushgateway"),
            "serve",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        log_path=tmp_path / "gateway.log",
        cwd=tmp_path,
    )
    server.env.pop("PYTHONPATH", None)
    imported = subprocess.run(
        [installed / "bin" / "python", "-c", "import periskop_pushgateway as p; print(p.__file__)"],
        cwd=tmp_path,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert imported.startswith(str(installed)), imported
    with server:
        body = push_body(aggregate("KeyError@job", 2, [occurrence("x")]), target_uuid="p")
        pushed = requests.post(f"{server.url}/services/nightly/errors", json=body, timeout=10)
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["count_increase"] == 2
        export = requests.get(f"{server.url}/services/nightly/-/errors", timeout=10).json()
        assert [a["total_count"] for a in export["aggregated_errors"]] == [2]
        page = requests.get(f"{server.url}/services/nightly/-/keys", timeout=10)
        assert page.status_code == 200 and "KeyError@job" in page.text
        stylesheet = requests.get(f"{server.url}/-/static/pages.css", timeout=10)
        assert stylesheet.status_code == 200 and stylesheet.text.strip()
