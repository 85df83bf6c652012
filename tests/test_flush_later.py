"""The gateway's sync worker acknowledges a push once its commit is flushed: once for all the
pushes it took in a row, and within a bound whatever it serves next (flush_later.py,
durable_worker.py). Real gunicorn with one worker, on a disk made slow or failing by
bench/slow_flush.c (LD_PRELOAD)."""

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from .conftest import new_database_url
from .helpers import aggregate, counts, occurrence, push_body
from .servers import REPO, production_gunicorn
from .test_metrics import sample

pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def slow_flush(tmp_path_factory):
    """bench/slow_flush.c, built for LD_PRELOAD."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler (cc) is needed to build bench/slow_flush.c"
    library = tmp_path_factory.mktemp("slow_flush") / "slow_flush.so"
    source = REPO / "bench" / "slow_flush.c"
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"]
    subprocess.run(command, check=True)
    return library


def one_worker(tmp_path, library, **flush_settings):
    """The gateway as deployed (gunicorn.conf.py, behind one proxy), with one worker, every
    flush through the library."""
    env = {"LD_PRELOAD": str(library), **flush_settings}
    return production_gunicorn(new_database_url(tmp_path), tmp_path, workers=1, env=env)


def new_client_push(number, count=1):
    body = push_body(aggregate("k", count, [occurrence(f"m{number}")]), target_uuid=f"p{number}")
    return json.dumps(body)


def post(gateway, data):
    return requests.post(gateway.url + "/errors", data=data, timeout=60)


def metrics_text(gateway):
    response = requests.get(gateway.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def push_all_at_once(gateway, bodies):
    with ThreadPoolExecutor(len(bodies)) as pool:
        return [response.status_code for response in pool.map(lambda b: post(gateway, b), bodies)]


def test_pushes_arriving_together_share_one_flush(tmp_path, slow_flush):
    bodies = [new_client_push(number) for number in range(12)]
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="300000")
    with gateway:
        assert push_all_at_once(gateway, bodies) == [200] * 12
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
        assert counts(export) == {"k": 12}
        text = metrics_text(gateway)
    assert sample(text, "periskop_pushgateway_pushes_per_flush_sum") == 12
    # A flush of 0.3 s and a push's few milliseconds: the pushes that arrive during a flush
    # (or before the worker runs out of requests to take) wait together for the next.
    assert sample(text, "periskop_pushgateway_pushes_per_flush_count") < 12
    assert sample(text, "periskop_pushgateway_pushes_total", outcome="accepted") == 12


def test_no_more_than_64_answers_wait_for_one_flush(tmp_path, slow_flush):
    """The worker flushes and answers before it takes a request past 64 answers held
    (durable_worker.MAX_WAITING)."""
    bodies = [new_client_push(number) for number in range(100)]
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="500000")
    with gateway:
        assert push_all_at_once(gateway, bodies) == [200] * 100
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
        assert counts(export) == {"k": 100}
        text = metrics_text(gateway)
    flushes = sample(text, "periskop_pushgateway_pushes_per_flush_count")
    assert sample(text, "periskop_pushgateway_pushes_per_flush_bucket", le="64.0") == flushes
    assert sample(text, "periskop_pushgateway_pushes_per_flush_bucket", le="32.0") < flushes


def test_a_disk_that_stops_answering_holds_at_most_64_connections_of_a_worker(tmp_path, slow_flush):
    """While flushes take 1 s, the answers the worker keeps and those its thread is sending
    hold at most MAX_WAITING of its clients' connections together."""
    bodies = [new_client_push(number) for number in range(150)]
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="1000000")
    with gateway:
        [worker] = gateway.worker_pids()
        statuses = []
        pushing = threading.Thread(
            target=lambda: statuses.extend(push_all_at_once(gateway, bodies))
        )
        pushing.start()
        held = []
        while pushing.is_alive() and len(held) < 100:
            held.append(client_connections(worker, gateway.port))
            time.sleep(0.05)
        pushing.join(120)
    assert statuses == [200] * 150
    # The thread takes the first pushes after 50 ms and flushes them for 1 s; the worker then
    # keeps no more than the rest of the 64 before it flushes too.
    assert 32 < max(held) <= 64, held


def client_connections(pid, port):
    """The established TCP connections to `port` that process `pid` holds."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    # By inode: /proc/net/tcp is read a page at a time, and a table that changes meanwhile
    # (other tests' servers beside this one) can list a socket twice; counted per line, this
    # once gave 182 connections for 150 pushes.
    held = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and state == "01" and f"socket:[{inode}]" in sockets:
            held.add(inode)
    return len(held)


def test_a_push_whose_flush_fails_gets_a_503_and_the_worker_serves_on(tmp_path, slow_flush):
    failing = tmp_path / "disk-fails"
    gateway = one_worker(
        tmp_path, slow_flush, SLOW_FLUSH_US="0", SLOW_FLUSH_FAIL_WHILE=str(failing)
    )
    first = new_client_push(1, count=1)
    later = json.dumps(
        push_body(aggregate("k", 5, [occurrence("m1"), occurrence("m2")]), target_uuid="p1")
    )
    with gateway:
        assert post(gateway, first).status_code == 200
        [worker] = gateway.worker_pids()
        failing.touch()
        response = post(gateway, later)
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json()["code"] == 503
        assert response.json()["description"].startswith("The database is unavailable")
        # The push found stored now was never on disk: pushed again, it is acknowledged
        # only once a flush succeeds.
        assert post(gateway, later).status_code == 503
        failing.unlink()
        assert post(gateway, later).status_code == 200
        assert gateway.worker_pids() == [worker]
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
        assert counts(export) == {"k": 5}  # the later state, counted once (rule 2)
        text = metrics_text(gateway)
    assert sample(text, "periskop_pushgateway_pushes_total", outcome="unavailable") == 2
    assert sample(text, "periskop_pushgateway_pushes_total", outcome="accepted") == 2
    log = (tmp_path / "gunicorn.log").read_text()
    assert "database unavailable" in log
    assert log.count('"POST /errors HTTP/1.1" 503') == 2


def test_a_stopping_worker_first_answers_the_pushes_waiting_for_a_flush(tmp_path, slow_flush):
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="800000")
    answers = []
    with gateway:
        pushing = threading.Thread(target=lambda: answers.append(post(gateway, new_client_push(1))))
        pushing.start()
        _wait_until_committed(gateway)
        # Committed, its flush under way: the worker is told to stop.
        gateway.process.send_signal(signal.SIGTERM)
        pushing.join(30)
        assert gateway.process.wait(30) == 0
    assert [answer.status_code for answer in answers] == [200]
    assert answers[0].json()["count_increase"] == 1


def test_a_push_is_answered_while_the_worker_waits_on_a_slow_client(tmp_path, slow_flush):
    """The worker takes the next connection, a client that sends its headers slowly, while a
    push's answer is kept: its answerer thread flushes and sends it within
    durable_worker.MAX_WAIT_SECONDS, not once the slow client is done."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="0")
    body = new_client_push(1).encode()
    head = f"POST /errors HTTP/1.1\r\nHost: gateway\r\nContent-Length: {len(body)}\r\n\r\n"
    with gateway:
        [worker] = gateway.worker_pids()
        with (
            socket.create_connection(("127.0.0.1", gateway.port)) as pusher,
            socket.create_connection(("127.0.0.1", gateway.port)) as slow,
        ):
            pusher.sendall(head.encode() + body[:10])
            # Queued behind the pusher's connection: the worker takes it once the push is
            # committed, and waits for the rest of its headers.
            slow.sendall(b"GET /-/errors HTTP/1.1\r\nHost: gateway\r\n")
            pusher.sendall(body[10:])
            # Without the thread, the answer would wait for the slow client, or for gunicorn's
            # timeout (30 s) to end the worker.
            pusher.settimeout(20)
            assert pusher.recv(100).startswith(b"HTTP/1.1 200 ")
            slow.settimeout(0.2)
            with pytest.raises(TimeoutError):
                slow.recv(100)  # still being read
            slow.sendall(b"\r\n")
            slow.settimeout(20)
            assert slow.recv(100).startswith(b"HTTP/1.1 200 ")
        assert gateway.worker_pids() == [worker]


def _wait_until_committed(gateway):
    database = gateway.database_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + 20
    while not _committed(database):
        assert time.monotonic() < deadline, "the push was never committed"
        time.sleep(0.02)


def _committed(database):
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute("SELECT count(*) FROM aggregates").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False  # not migrated yet


def test_a_client_gone_before_its_answer_leaves_the_worker_serving(tmp_path, slow_flush):
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="300000")
    body = new_client_push(1).encode()
    request = (
        f"POST /errors HTTP/1.1\r\nHost: gateway\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with gateway:
        [worker] = gateway.worker_pids()
        with socket.create_connection(("127.0.0.1", gateway.port)) as impatient:
            impatient.sendall(request)
            _wait_until_committed(gateway)
            # Gone (reset) while its flush runs: its answer meets a closed connection.
            impatient.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert post(gateway, new_client_push(2)).status_code == 200
        assert post(gateway, new_client_push(3)).status_code == 200
        assert gateway.worker_pids() == [worker]
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
    # Its push was whole when it left, so it is stored, though never acknowledged.
    assert counts(export) == {"k": 3}


def _raw_push(gateway, number):
    """A connection that has sent one push, for a test to read and close."""
    body = new_client_push(number).encode()
    head = f"POST /errors HTTP/1.1\r\nHost: gateway\r\nContent-Length: {len(body)}\r\n\r\n"
    return _raw_request(gateway, head, body)


def _raw_request(gateway, head, body=b""):
    """A connection that has sent head and body, for a test to read and close."""
    client = socket.create_connection(("127.0.0.1", gateway.port))
    client.sendall(head.encode() + body)
    client.settimeout(20)
    return client


def _read_until_closed(client):
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_a_client_that_keeps_its_connection_open_holds_no_one_up(tmp_path, slow_flush):
    """A client that reads its answer but never closes its end: the worker closes the
    connection at once instead of lingering for gunicorn's 2 s until the client closes it, so
    the next push is answered meanwhile (durable_worker.close_after_answer)."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="0")
    with gateway:
        lingering = _raw_push(gateway, 1)
        with lingering:
            assert _read_until_closed(lingering).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            assert post(gateway, new_client_push(2)).status_code == 200
            # A push takes milliseconds; gunicorn's linger would have held the worker 2 s.
            assert time.monotonic() - started < 1.5
            # The worker closed its end: what the client sends now is refused.
            time.sleep(0.1)
            with pytest.raises(OSError):
                for _ in range(20):
                    lingering.sendall(b"x")
                    time.sleep(0.05)
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
    assert counts(export) == {"k": 2}


def test_a_client_that_sent_more_than_its_push_is_read_to_its_end_not_reset(tmp_path, slow_flush):
    """Bytes that arrive past the push (a pipelined request) are read before the connection
    closes, as gunicorn does: closed with them unread, the kernel would answer with a reset,
    which over a real network can cut short an answer still on its way. On loopback the
    answer always arrives; the reset shows as the refusal of what the client sends next."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="300000")
    with gateway:
        with _raw_push(gateway, 1) as client:
            # Sent while the push's flush runs: unread when its answer is sent.
            _wait_until_committed(gateway)
            client.sendall(b"GET /-/health HTTP/1.1\r\nHost: gateway\r\n\r\n")
            head, _, body = _read_until_closed(client).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert json.loads(body)["aggregates"] == 1
            time.sleep(0.1)
            client.sendall(b"still read by the worker, which waits for this end to close")
        assert post(gateway, new_client_push(2)).status_code == 200
        export = requests.get(gateway.url + "/-/errors", timeout=10).json()
    assert counts(export) == {"k": 2}


def _held_up_by(gateway, lingering):
    """How long a push waits behind a client that read its answer and keeps its end open."""
    with lingering:
        answer = _read_until_closed(lingering)
        started = time.monotonic()
        assert post(gateway, new_client_push(99)).status_code == 200
        return answer, time.monotonic() - started


def test_no_answer_read_to_its_end_holds_the_worker_for_a_client_that_keeps_its_end_open(
    tmp_path, slow_flush
):
    """Not only a handed-off push's: a scrape, a push that changed nothing (answered without a
    flush) and a request with no body close at once too (durable_worker._read_to_its_end).
    gunicorn's linger would hold the one worker 2 s after each."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="0")
    body = new_client_push(1).encode()
    push_head = f"POST /errors HTTP/1.1\r\nHost: g\r\nContent-Length: {len(body)}\r\n\r\n"
    with gateway:
        assert post(gateway, body).status_code == 200
        requests_kept_open = [
            ("the same push again", push_head, body),
            ("a scrape", "GET /-/errors HTTP/1.1\r\nHost: g\r\n\r\n", b""),
            ("a chunked push", _chunked_head(), _chunked(body)),
        ]
        for what, head, sent in requests_kept_open:
            answer, waited = _held_up_by(gateway, _raw_request(gateway, head, sent))
            assert answer.startswith(b"HTTP/1.1 200 "), (what, answer[:200])
            # Milliseconds; gunicorn's linger would have held the worker 2 s.
            assert waited < 1.5, what


def _chunked_head():
    return "POST /errors HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunked(body):
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def test_an_answer_given_before_the_body_was_read_still_waits_for_the_rest_of_it(
    tmp_path, slow_flush
):
    """A push refused for its declared size (413) is answered before its body is read: the
    worker reads what the client still sends, as gunicorn does, rather than close with it
    unread, which would reset the connection under the answer. On loopback the answer always
    arrives; a reset would show as the refusal of what the client sends next."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="0")
    declared = 64 * 1024 * 1024
    head = f"POST /errors HTTP/1.1\r\nHost: g\r\nContent-Length: {declared}\r\n\r\n"
    with gateway:
        with _raw_request(gateway, head, b"{" * 1000) as client:
            assert _read_until_closed(client).startswith(b"HTTP/1.1 413 ")
            time.sleep(0.1)
            for _ in range(5):
                client.sendall(b" " * 1000)  # read by the worker, which waits for this end
                time.sleep(0.05)


def test_a_client_that_sends_more_and_keeps_its_end_open_holds_no_other_answer(
    tmp_path, slow_flush
):
    """Clients that send a byte past their push and keep their end open get gunicorn's linger
    (their byte is read before the close, see the test above), but in a thread of the
    worker's own: the answers held with theirs for the same flush, and the requests after
    them, do not wait the 2 s it may last (durable_worker.Lingerer)."""
    gateway = one_worker(tmp_path, slow_flush, SLOW_FLUSH_US="20000")
    stop = threading.Event()
    latencies = []
    lingered = []

    def sends_more(number):
        while not stop.is_set():
            with _raw_push(gateway, number) as client:
                # After the push was read (a byte sent with it would be read with it), while
                # its answer waits for the flush.
                time.sleep(0.005)
                client.sendall(b"x")
                lingered.append(_read_until_closed(client))
                stop.wait(2.5)  # the end stays open past the linger
            number += 100

    def normal(number):
        while not stop.is_set():
            started = time.monotonic()
            assert post(gateway, new_client_push(number)).status_code == 200
            latencies.append(time.monotonic() - started)
            number += 100

    with gateway:
        threads = [threading.Thread(target=sends_more, args=(n,)) for n in range(8)]
        threads += [threading.Thread(target=normal, args=(n,)) for n in range(50, 58)]
        for thread in threads:
            thread.start()
        time.sleep(5)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(lingered) >= 8 and all(a.startswith(b"HTTP/1.1 200 ") for a in lingered)
    assert len(latencies) > 100
    # Milliseconds each; behind a linger an answer would wait up to 2 s.
    assert max(latencies) < 1, sorted(latencies)[-5:]
