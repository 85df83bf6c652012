"""What the database side of a push from a new client costs in CPU, in one process, and what
two ways of writing differently would save there:

    .venv/bin/python bench/write_costs.py [--pushes 600] [--rounds 2]

For the small and the typical push of bench/payloads.py, each with a new target_uuid, under
synchronous=NORMAL (no waiting for the disk), it prints the CPU per push of the store's write
transaction (Store.ingest, the body loaded beforehand):
- one connection writing every push, as a single writer process would;
- two connections taking turns, as two gunicorn workers do: each transaction then begins
  after the other connection's commit, and SQLite empties the connection's page cache;
- 8 pushes committed at a time, each in a savepoint of its own (so that a push that fails
  changes nothing), as a worker writing the pushes it takes in a row in one transaction would:
  on one connection with SQLAlchemy's savepoints (Connection.begin_nested), and on two
  connections taking turns by transaction with savepoints run on the driver's cursor, as two
  such workers would.
"""

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

from in_process import new_client_bodies
from payloads import main as write_payloads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from periskop_pushgateway.app import create_app  # noqa: E402
from periskop_pushgateway.storage.driver_sql import run_sql  # noqa: E402
from periskop_pushgateway.wire.body import parse_push_document  # noqa: E402

WARM_UP = 20
PER_TRANSACTION = 8


def stores(database, count):
    """`count` gateways' stores on one database file, each with its own connection."""
    config = {"DATABASE_URL": f"sqlite:///{database}", "SQLITE_SYNCHRONOUS": "NORMAL"}
    gateways = [create_app(config).extensions["periskop_pushgateway"] for _ in range(count)]
    return gateways, [gateway.store for gateway in gateways]


def loaded_pushes(gateway, body, count):
    return [gateway.load_push(parse_push_document(b)) for b in new_client_bodies(body, count)]


def cpu_per_push(pushes, write):
    started = time.process_time()
    for number, push in enumerate(pushes):
        write(number, push)
    return (time.process_time() - started) / len(pushes) * 1e6


def taking_turns(folder, body, count, connections):
    gateways, taking = stores(folder / f"turns-{connections}-{time.monotonic_ns()}.db", connections)
    pushes = loaded_pushes(gateways[0], body, WARM_UP + count)
    for number, push in enumerate(pushes[:WARM_UP]):
        taking[number % connections].ingest("bench", push)
    return cpu_per_push(
        pushes[WARM_UP:], lambda number, push: taking[number % connections].ingest("bench", push)
    )


def in_shared_transactions(folder, body, count, connections, savepoint):
    gateways, taking = stores(folder / f"shared-{time.monotonic_ns()}.db", connections)
    pushes = loaded_pushes(gateways[0], body, WARM_UP + count)
    for number, push in enumerate(pushes[:WARM_UP]):
        taking[number % connections].ingest("bench", push)
    # Each push's transaction body, as Store.ingest gives it to run_write.
    store = taking[0]
    applies = []
    run_write = store.run_write
    store.run_write = lambda apply, flush=True: applies.append(apply)
    for push in pushes[WARM_UP:]:
        store.ingest("bench", push)
    store.run_write = run_write
    started = time.process_time()
    for first in range(0, len(applies), PER_TRANSACTION):
        writer = taking[first // PER_TRANSACTION % connections]
        with writer._write_transaction() as connection:
            for apply in applies[first : first + PER_TRANSACTION]:
                with savepoint(connection):
                    apply(connection)
    return (time.process_time() - started) / len(applies) * 1e6


def sqlalchemy_savepoint(connection):
    return connection.begin_nested()


@contextlib.contextmanager
def driver_savepoint(connection):
    run_sql(connection, "SAVEPOINT push")
    try:
        yield
    except BaseException:
        run_sql(connection, "ROLLBACK TO push")
        raise
    finally:
        run_sql(connection, "RELEASE push")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="periskop-pushgateway-write-costs-") as name:
        folder = Path(name)
        write_payloads(folder / "payloads")
        print("µs of CPU per push, the store's write transaction, synchronous=NORMAL")
        for kind in ("small", "typical"):
            body = (folder / "payloads" / f"{kind}_0.json").read_bytes()
            for _ in range(args.rounds):
                with contextlib.redirect_stdout(sys.stderr):  # Alembic's progress
                    one = taking_turns(folder, body, args.pushes, 1)
                    two = taking_turns(folder, body, args.pushes, 2)
                    shared = in_shared_transactions(
                        folder, body, args.pushes, 1, sqlalchemy_savepoint
                    )
                    shared_turns = in_shared_transactions(
                        folder, body, args.pushes, 2, driver_savepoint
                    )
                print(
                    f"  {kind}: one connection {one:.0f}; two taking turns {two:.0f}; "
                    f"{PER_TRANSACTION} a transaction, one connection, SQLAlchemy's "
                    f"savepoints {shared:.0f}; {PER_TRANSACTION} a transaction, two connections "
                    f"taking turns, savepoints on the driver's cursor {shared_turns:.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
