#!/usr/bin/env python3
"""Writes deterministic Periskop push payloads for load tests.

    python3 payloads.py OUTDIR

small_N.json   1 aggregate x 1 occurrence                       (N = 0..7, distinct target_uuids)
typical_N.json 5 aggregates x 10 occurrences, 20-line stacktraces, http_context with 3 headers
               (~52 KB)
fill_N.json    20 files x 50 new keys x 10 occurrences: together 1,000 distinct aggregation keys
"""

import json
import random
import sys
import uuid
from pathlib import Path


def occurrence(rng, i):
    return {
        "error": {
            "class": "ValueError",
            "message": f"invalid literal for int() with base 10: 'x{i}'",
            "stacktrace": [f"step_{j}.py:{rng.randint(1, 500)} in run_{j}" for j in range(20)],
            "cause": None,
        },
        "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": f"2026-11-25T10:{i // 60 % 60:02d}:{i % 60:02d}.{rng.randint(0, 999):03d}Z",
        "severity": "error",
        "http_context": {
            "request_method": "POST",
            "request_url": f"http://api.internal/v1/items/{i}",
            "request_headers": {
                "Content-Type": "application/json",
                "X-Request-Id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "User-Agent": "batch-runner/1.4",
            },
            "request_body": None,
        },
    }


def aggregate(rng, key, occurrences, total):
    return {
        "aggregation_key": key,
        "total_count": total,
        "severity": "error",
        "created_at": "2026-11-25T09:00:00.000Z",
        "latest_errors": [occurrence(rng, i) for i in range(occurrences)],
    }


def push(rng, aggs):
    return {"target_uuid": str(uuid.UUID(int=rng.getrandbits(128))), "aggregated_errors": aggs}


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7878)
    for n in range(8):
        (out / f"small_{n}.json").write_text(
            json.dumps(push(rng, [aggregate(rng, f"SmallError@{n:08x}", 1, 1)]))
        )
        (out / f"typical_{n}.json").write_text(
            json.dumps(
                push(
                    rng,
                    [aggregate(rng, f"TypicalError{a}@{n:04x}{a:04x}", 10, 40) for a in range(5)],
                )
            )
        )
    for f in range(20):
        (out / f"fill_{f}.json").write_text(
            json.dumps(
                push(
                    rng, [aggregate(rng, f"FillError@{f * 50 + k:08x}", 10, 10) for k in range(50)]
                )
            )
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench-payloads")
