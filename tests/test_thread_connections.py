"""Writes on SQLite run on a Connection each thread keeps (ThreadConnections), not one
checked out of the pool for each."""

import threading

import pytest

from .helpers import aggregate, counts, post, push_body, scrape

# PostgreSQL's writes check a connection out of the pool for each.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def store(app):
    return app.extensions["periskop_pushgateway"].store


def driver_connection_of_a_write(store):
    return store.run_write(lambda connection: connection.connection.driver_connection)


def test_a_thread_writes_on_its_own_connection_every_time(store):
    first = driver_connection_of_a_write(store)
    assert driver_connection_of_a_write(store) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(driver_connection_of_a_write(store)))
    thread.start()
    thread.join()
    assert other[0] is not first
    store.backend.write_connections.close()
    assert driver_connection_of_a_write(store) is not first


def test_a_write_that_failed_leaves_the_connection_fit_for_the_next(app, store):
    client = app.test_client()
    post(client, push_body(aggregate("k", 1), target_uuid="p"))

    def fail(connection):
        connection.exec_driver_sql("UPDATE groups SET last_push_ns = 0")
        raise RuntimeError("a failure in the middle of a write")

    with pytest.raises(RuntimeError):
        store.run_write(fail)
    assert post(client, push_body(aggregate("k", 3), target_uuid="p")).status_code == 200
    assert counts(scrape(client)) == {"k": 3}
    oldest_push_ns = store.read_snapshot(
        lambda connection: connection.exec_driver_sql(
            "SELECT min(last_push_ns) FROM groups"
        ).scalar()
    )
    assert oldest_push_ns > 0  # the failed write's update was rolled back
