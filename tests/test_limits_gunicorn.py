"""The size limits hold against a real gunicorn, whatever the headers claim."""

import gzip
import json
import socket
import time

import pytest
import requests

from .helpers import aggregate, counts, push_body
from .servers import gunicorn_on_new_database

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limits")
    with gunicorn_on_new_database(
        folder, env={"PERISKOP_PUSHGATEWAY_MAX_BODY_BYTES": str(LIMIT)}
    ) as server:
        yield server


def raw_request(gateway, head, body=b"", read_timeout=10):
    """Send bytes as they are and return the status line's code."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=read_timeout) as sock:
        sock.sendall(head + b"\r\n\r\n")
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking the whole body
        response = b""
        while b"\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
    return int(response.split(b" ", 2)[1])


def padded_push(size):
    """A valid push padded with white space to `size` bytes."""
    body = json.dumps(push_body(aggregate("padded", 1))).encode()
    return body + b" " * (size - len(body))


def still_serving(gateway):
    response = requests.post(
        gateway.url + "/errors", data=json.dumps(push_body(aggregate("alive", 1))), timeout=10
    )
    return response.status_code == 200


def test_a_body_at_the_limit_is_accepted(gateway):
    response = requests.post(gateway.url + "/errors", data=padded_push(LIMIT), timeout=30)
    assert response.status_code == 200


def test_a_chunked_body_under_the_limit_is_accepted(gateway):
    response = requests.post(gateway.url + "/errors", data=iter([padded_push(LIMIT)]), timeout=30)
    assert response.status_code == 200, response.text


def test_a_chunked_body_of_valid_json_padded_past_the_limit_is_refused(gateway):
    response = requests.post(
        gateway.url + "/errors", data=iter([padded_push(LIMIT + 1)]), timeout=30
    )
    assert response.status_code == 413, response.text


def test_a_declared_oversize_body_is_refused_before_it_is_sent(gateway):
    head = b"POST /errors HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\nConnection: close"
    assert raw_request(gateway, head) == 413
    assert still_serving(gateway)


def test_a_chunked_body_without_length_is_held_to_the_limit(gateway):
    def chunks():
        for _ in range(40):
            yield b" " * 65536  # 2.5 MiB in all

    response = requests.post(gateway.url + "/errors", data=chunks(), timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["message"] == "push too large"
    assert still_serving(gateway)


def test_a_content_length_smaller_than_the_body_reads_no_further(gateway):
    body = json.dumps(push_body(aggregate("k" * 200, 1))).encode() + b" " * (3 * LIMIT)
    head = b"POST /errors HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close"
    # The first 100 bytes are not a whole JSON document.
    assert raw_request(gateway, head, body) == 400
    assert still_serving(gateway)


def test_a_gzip_bomb_is_refused_without_inflating_it(gateway):
    bomb = gzip.compress(b" " * (512 * LIMIT), compresslevel=9)  # 512 MiB of spaces
    assert len(bomb) < LIMIT
    response = requests.post(
        gateway.url + "/errors", data=bomb, headers={"Content-Encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413
    assert "decompressed" in response.json()["description"]
    assert still_serving(gateway)


def test_rejections_are_counted_in_the_gateways_own_export(gateway):
    export = requests.get(gateway.url + "/-/errors", timeout=10).json()
    own = {k: v for k, v in counts(export).items() if k.endswith("@periskop-pushgateway")}
    assert own.get("PushTooLarge@periskop-pushgateway", 0) >= 1


def test_a_body_that_stops_arriving_gets_408_and_the_worker_is_freed(tmp_path):
    """gunicorn reached directly: a Content-Length larger than what is sent holds a
    worker until the body read times out, then a 408; never gunicorn's kill and a 500."""
    with gunicorn_on_new_database(
        tmp_path, env={"PERISKOP_PUSHGATEWAY_BODY_READ_TIMEOUT_SECONDS": "1"}
    ) as server:
        started = time.monotonic()
        body = b'{"aggregated_errors": ['
        head = (
            b"POST /errors HTTP/1.1\r\nHost: gateway\r\n"
            + f"Content-Length: {len(body) + 100}".encode()
        )
        status = raw_request(server, head, body, read_timeout=20)
        waited = time.monotonic() - started
        assert status == 408
        print(f"answered 408 after {waited:.1f} s")
        assert still_serving(server)
        export = requests.get(server.url + "/-/errors", timeout=10).json()
        assert "PushBodyTimedOut@periskop-pushgateway" in counts(export)
