"""A push body whose framing is broken (chunked or Content-Length) gets a 4xx in the gateway's
JSON shape, counted and reported, from a real gunicorn: its plain sync worker, and the
durable one the gateway is deployed with. The connection then closes cleanly and the worker
serves the next push."""

import json
import socket

import pytest
import requests

from .conftest import new_database_url
from .helpers import aggregate, counts, push_body
from .servers import gunicorn_on_new_database, production_gunicorn

PUSH = json.dumps(push_body(aggregate("framed", 1))).encode()
HEAD = b"POST /errors HTTP/1.1\r\nHost: gateway\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(scope="module", params=["sync", "durable"])
def gateway(request, tmp_path_factory):
    """One worker, so the push after a broken one is served by the same worker."""
    folder = tmp_path_factory.mktemp(f"framing-{request.param}")
    env = {"PERISKOP_PUSHGATEWAY_BODY_READ_TIMEOUT_SECONDS": "1"}
    if request.param == "sync":
        server = gunicorn_on_new_database(folder, workers=1, env=env)
    else:
        server = production_gunicorn(new_database_url(folder), folder, workers=1, env=env)
    with server:
        yield server


def exchange(gateway, request, shut_write=False, timeout=10):
    """Send raw bytes (then end the sending side, if asked), read the answer up to the
    server's close; return (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(request)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        # A server that leaves the connection open fails this with a timeout, one that
        # resets it with ConnectionResetError.
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def still_serving(gateway):
    response = requests.post(gateway.url + "/errors", data=PUSH, timeout=10)
    return response.status_code == 200


def reports(gateway, name):
    export = requests.get(gateway.url + "/-/errors", timeout=10).json()
    return counts(export).get(f"{name}@periskop-pushgateway", 0)


BROKEN = {
    "a chunk size that is no hex number": (CHUNKED + b"zz\r\n" + PUSH + b"\r\n0\r\n\r\n", False),
    "no CRLF after a chunk's data": (
        CHUNKED + b"%x\r\n%sXX" % (len(PUSH), PUSH) + b"0\r\n\r\n",
        False,
    ),
    # gunicorn reads 8 KiB at a time and refuses a line still without its end past 8190 bytes.
    "a chunk-size line too long": (CHUNKED + b"0" * 40000 + b"1\r\n{\r\n0\r\n\r\n", False),
    "a bad chunk extension": (CHUNKED + b"%x;\x01\r\n%s\r\n0\r\n\r\n" % (len(PUSH), PUSH), False),
    "a body ending mid-chunk": (CHUNKED + b"%x\r\n%s" % (len(PUSH), PUSH[:10]), True),
    "a body ending between chunks": (CHUNKED + chunk(PUSH), True),
    "a body ending before its trailer section": (CHUNKED + chunk(PUSH) + b"0\r\n", True),
    "a body shorter than its Content-Length": (
        HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(PUSH) + 10, PUSH),
        True,
    ),
}


@pytest.mark.parametrize("request_bytes, shut_write", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_body_framing_gets_400_and_the_worker_serves_on(
    gateway, request_bytes, shut_write
):
    reported = reports(gateway, "MalformedPushBody")

    status, error = exchange(gateway, request_bytes, shut_write)

    assert status == 400, error
    assert error["code"] == 400
    assert error["message"] == "malformed push body"
    assert error["description"]
    assert reports(gateway, "MalformedPushBody") == reported + 1
    assert still_serving(gateway)


def test_a_chunked_body_that_stops_arriving_still_gets_408(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        # The first chunk's size says more than is sent, and the connection stays open.
        sock.sendall(CHUNKED + b"%x\r\n%s" % (len(PUSH), PUSH[:10]))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["message"] == "push body timed out"
    assert still_serving(gateway)


def test_a_well_framed_chunked_push_is_accepted(gateway):
    status, summary = exchange(
        gateway,
        CHUNKED
        + chunk(PUSH[:10])
        + b"3;name=value\r\n"
        + PUSH[10:13]
        + b"\r\n"
        + chunk(PUSH[13:])
        + b"0\r\nX-Trailer: 1\r\n\r\n",
    )
    assert status == 200, summary
