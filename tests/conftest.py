import json
from pathlib import Path

import pytest

from periskop_pushgateway import create_app

DATA = Path(__file__).parent / "data"


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def make_app(database_url):
    """Build an app on this test's database file; call again to "restart" the gateway."""

    def make(**overrides):
        return create_app({"DATABASE_URL": database_url, **overrides})

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def seed_push():
    return json.loads((DATA / "seed_push.json").read_text())
