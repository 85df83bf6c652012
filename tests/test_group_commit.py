"""Group commit: writes of one worker's threads waiting at the same moment share a transaction
and its fsync; each is answered only after that commit, and one that fails leaves the others
whole and changes nothing itself."""

import contextlib
import json
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from periskop_pushgateway.config import load_config
from periskop_pushgateway.storage.engines import open_database
from periskop_pushgateway.storage.group_commit import MAX_BATCH, GroupCommit

from .helpers import aggregate, counts, post, push_body, scrape
from .servers import gunicorn_on_new_database

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def engine(tmp_path):
    """The gateway's own SQLite set-up (engines.py), on a table of its own."""
    config = load_config({}, {"DATABASE_URL": f"sqlite:///{tmp_path / 'writes.db'}"})
    write_engine = open_database(config).write_engine
    with write_engine.begin() as connection:
        connection.execute(text("CREATE TABLE writes (name TEXT PRIMARY KEY)"))
    yield write_engine
    write_engine.dispose()


def written(engine):
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT name FROM writes")).scalars())


def insert(name):
    def apply(connection):
        connection.execute(text("INSERT INTO writes VALUES (:name)"), {"name": name})
        return name

    return apply


def run_in_threads(group_commit, applies):
    results, errors = {}, {}

    def run(index, apply):
        try:
            results[index] = group_commit.run(apply)
        except Exception as error:  # noqa: BLE001
            errors[index] = error

    threads = [threading.Thread(target=run, args=item) for item in enumerate(applies)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def held_leader(group_commit, waiting):
    """Start a write that holds its transaction open until `waiting` more writes queue."""
    release = threading.Event()

    def apply(connection):
        insert("leader")(connection)
        release.wait(10)
        return "leader"

    thread = threading.Thread(target=group_commit.run, args=(apply,))
    thread.start()

    def wait_for_queue():
        for _ in range(1000):
            with group_commit._lock:
                if len(group_commit._waiting) >= waiting:
                    break
            threading.Event().wait(0.005)
        release.set()
        thread.join(10)

    return wait_for_queue


def test_writes_waiting_together_share_one_commit_and_a_failing_one_changes_nothing(engine):
    sizes = []  # writes held by each commit
    group_commit = GroupCommit(engine.begin, sizes.append)
    release_leader = held_leader(group_commit, 4)

    def fails(connection):
        insert("never")(connection)
        raise ValueError("refused")

    applies = [insert("a"), fails, insert("b"), insert("c")]
    threads, results, errors = run_in_threads(group_commit, applies)
    release_leader()
    for thread in threads:
        thread.join(10)
    assert results == {0: "a", 2: "b", 3: "c"}
    assert isinstance(errors[1], ValueError)
    assert written(engine) == {"leader", "a", "b", "c"}
    # The leader's own commit, then the four that waited meanwhile, together.
    assert sizes == [1, 4]


def test_a_commit_that_fails_fails_every_write_it_held(engine):
    sizes = []

    @contextlib.contextmanager
    def transaction_whose_commit_fails():
        with engine.begin() as connection:
            yield connection
            raise OSError("disk full")  # where COMMIT would fail: nothing of it holds

    group_commit = GroupCommit(transaction_whose_commit_fails, sizes.append)
    threads, results, errors = run_in_threads(group_commit, [insert(str(n)) for n in range(8)])
    for thread in threads:
        thread.join(10)
    assert results == {}
    assert len(errors) == 8 and all(isinstance(e, OSError) for e in errors.values())
    assert written(engine) == set() and sizes == []


def test_more_writes_than_a_batch_holds_are_all_led_to_their_commit(engine):
    sizes = []  # writes held by each commit
    group_commit = GroupCommit(engine.begin, sizes.append)
    release_leader = held_leader(group_commit, 3 * MAX_BATCH)
    names = [f"w{n}" for n in range(3 * MAX_BATCH)]
    threads, results, errors = run_in_threads(group_commit, [insert(n) for n in names])
    release_leader()
    for thread in threads:
        thread.join(10)
    assert not errors and sorted(results.values()) == sorted(names)
    assert written(engine) == {"leader", *names}
    assert sizes == [1, MAX_BATCH, MAX_BATCH, MAX_BATCH]


def test_a_workers_threads_pushing_at_once_count_exactly(make_app):
    """The store under threads: every push acknowledged is counted once, and some shared a
    commit."""
    app = make_app()
    store = app.extensions["periskop_pushgateway"].store
    committed = []
    store._group_commit._on_commit = committed.append
    clients = [app.test_client() for _ in range(8)]
    statuses = []

    def pusher(index, client):
        for n in range(25):
            body = push_body(aggregate(f"k{n % 5}", n + 1), target_uuid=f"thread-{index}")
            statuses.append(post(client, body, group="jobs").status_code)

    threads = [threading.Thread(target=pusher, args=item) for item in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 200
    # Each thread's highest count per key, summed over the threads.
    expected = {f"k{key}": 8 * max(n + 1 for n in range(25) if n % 5 == key) for key in range(5)}
    assert counts(scrape(app.test_client(), "jobs")) == expected
    assert max(committed) > 1


def test_gthread_workers_share_commits_and_count_exactly(tmp_path):
    """`--threads` above 1: gunicorn's gthread workers, pushed to by many clients at once."""
    command = [
        sys.executable, "-m", "gunicorn", "wsgi:app", "--workers", "2", "--threads", "4",
        "--bind", "127.0.0.1:{port}",
    ]  # fmt: skip
    with gunicorn_on_new_database(tmp_path, command=command) as server:

        def pusher(index):
            with requests.Session() as session:  # keep-alive, as gthread allows
                for n in range(30):
                    body = push_body(aggregate("k", n + 1), target_uuid=f"client-{index}")
                    response = session.post(f"{server.url}/errors", data=json.dumps(body))
                    assert response.status_code == 200

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(pusher, range(16)))
        assert counts(requests.get(f"{server.url}/-/errors", timeout=10).json()) == {"k": 16 * 30}
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
        shared = re.search(r'writes_per_commit_bucket\{le="1.0"\} (\S+)', metrics).group(1)
        total = re.search(r"writes_per_commit_count (\S+)", metrics).group(1)
        assert float(shared) < float(total)  # some commits held more than one push
