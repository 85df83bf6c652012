"""Where a push's time goes, in one process: Flask's test client, no gunicorn, no profiler.

    .venv/bin/python bench/in_process.py

Prints milliseconds per request for the floor's Flask request and the gateway's pushes, and
for the parts of a push: loading its body, and the store's read or write transaction. Run it
on a quiet machine; compare figures within one run only.
"""

import logging
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from flask import Flask, request

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from payloads import main as write_payloads  # noqa: E402

from periskop_pushgateway.app import create_app  # noqa: E402
from periskop_pushgateway.wire.body import parse_push_document  # noqa: E402

PUSH_PATH = "/services/bench/errors"


def ms_per_call(call, calls):
    call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1000


def floor_client():
    floor = Flask("floor")

    @floor.post(PUSH_PATH)
    def push():
        orjson.loads(request.get_data())
        return "", 200

    return floor.test_client()


def gateway(folder, synchronous="FULL"):
    database = folder / f"{uuid.uuid4().hex}.db"
    app = create_app({"DATABASE_URL": f"sqlite:///{database}", "SQLITE_SYNCHRONOUS": synchronous})
    return app.test_client(), app.extensions["periskop_pushgateway"]


def new_client_bodies(body, count):
    document = orjson.loads(body)
    bodies = []
    for _ in range(count):
        document["target_uuid"] = str(uuid.uuid4())
        bodies.append(orjson.dumps(document))
    return bodies


def report_repeated(folder, body, calls):
    client, parts = gateway(folder)
    client.post(PUSH_PATH, data=body)
    loaded = parts.load_push(parse_push_document(body))
    repeated = ms_per_call(lambda: client.post(PUSH_PATH, data=body), calls)
    print(f"  gateway request, repeated: {repeated:.3f}")
    load = ms_per_call(lambda: parts.load_push(parse_push_document(body)), calls)
    print(f"    loading the body: {load:.3f} (skipped: the worker remembers it)")
    read = ms_per_call(lambda: parts.store.ingest("bench", loaded, likely_unchanged=True), calls)
    print(f"    the store's read transaction: {read:.3f}")


def report_new_clients(folder, body, calls, synchronous):
    client, parts = gateway(folder, synchronous)
    bodies = iter(new_client_bodies(body, calls + 1))
    fresh = ms_per_call(lambda: client.post(PUSH_PATH, data=next(bodies)), calls)
    print(f"  gateway request, new client each, synchronous={synchronous}: {fresh:.3f}")
    # Loaded beforehand: only the store's transaction is timed.
    loaded = [parts.load_push(parse_push_document(b)) for b in new_client_bodies(body, calls + 1)]
    pushes = iter(loaded)
    write = ms_per_call(lambda: parts.store.ingest("bench", next(pushes)), calls)
    print(f"    the store's write transaction: {write:.3f}")


def main():
    logging.disable(logging.CRITICAL)
    folder = Path(tempfile.mkdtemp(prefix="periskop-pushgateway-in-process-"))
    write_payloads(folder / "payloads")
    floor = floor_client()
    print("ms per call, in one process")
    for kind, calls in (("small", 2000), ("typical", 400)):
        body = (folder / "payloads" / f"{kind}_0.json").read_bytes()
        print(f"{kind} push ({len(body):,} bytes)")
        floor_ms = ms_per_call(lambda: floor.post(PUSH_PATH, data=body), calls)  # noqa: B023
        print(f"  floor request: {floor_ms:.3f}")
        report_repeated(folder, body, calls)
        for synchronous in ("FULL", "NORMAL"):
            report_new_clients(folder, body, calls, synchronous)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
