import json
import os
import uuid
from pathlib import Path

import pytest

from periskop_pushgateway import create_app

DATA = Path(__file__).parent / "data"

# The suite runs on SQLite by default; PERISKOP_PUSHGATEWAY_TEST_DATABASE=postgresql runs it
# against the PostgreSQL server at PERISKOP_PUSHGATEWAY_TEST_POSTGRESQL_URL, each test in a
# schema of its own that is dropped afterwards.
TEST_DATABASE = os.environ.get("PERISKOP_PUSHGATEWAY_TEST_DATABASE", "sqlite")
POSTGRESQL_URL = os.environ.get(
    "PERISKOP_PUSHGATEWAY_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_schemas = []
# The disk reserve each test's SQLite database keeps: at the default (64 MiB), the suite's
# hundreds of databases would take tens of GB. tests/test_full_disk.py sets the default.
TEST_DISK_RESERVE_BYTES = 1024 * 1024


def pytest_collection_modifyitems(config, items):
    if TEST_DATABASE != "sqlite":
        skip = pytest.mark.skip(reason="about SQLite itself (its file, locks and pragmas)")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


def new_database_url(folder):
    """A fresh, empty database for one test (or one module's server)."""
    if TEST_DATABASE == "sqlite":
        return f"sqlite:///{folder / 'gateway.db'}"
    return new_postgresql_url()


def new_postgresql_url():
    """A schema of its own on the test PostgreSQL server, dropped at the end of the session."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    _postgresql(f'CREATE SCHEMA "{schema}"')
    _schemas.append(schema)
    return f"{POSTGRESQL_URL}?options=-csearch_path%3D{schema}"


def _postgresql(statement):
    import psycopg

    with psycopg.connect(POSTGRESQL_URL.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas():
    yield
    for schema in _schemas:
        _postgresql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def database_url(tmp_path):
    return new_database_url(tmp_path)


@pytest.fixture
def make_app(database_url):
    """Build an app on this test's database; call again to "restart" the gateway."""

    def make(**overrides):
        # Most tests use the admin API: the suite opens it. Its default, off, is tested by
        # tests/test_admin.py with create_app alone.
        app = create_app(
            {
                "DATABASE_URL": database_url,
                "ADMIN_OPEN": True,
                "SQLITE_DISK_RESERVE_BYTES": TEST_DISK_RESERVE_BYTES,
                **overrides,
            }
        )
        # In one test's process, housekeeping runs when the test says (run_if_due, run):
        # served by gunicorn, each worker's thread runs it (tests/test_housekeeping.py).
        app.extensions["periskop_pushgateway"].housekeeping.in_background = False
        return app

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
