"""Reading a push body: size limit, Content-Encoding, JSON."""

import contextlib
import zlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from gunicorn.http.errors import NoMoreData, ParseException

from ..errors import (
    InvalidPush,
    MalformedPushBody,
    PushBodyTimedOut,
    PushTooLarge,
    UnsupportedPushEncoding,
)

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

_CHUNK = 64 * 1024

_MAX_GZIP_MEMBERS = 16

# Characters of a framing error's own words kept in the answer: gunicorn's can quote a whole
# chunk-size line (8 KiB) of the client's.
_FRAMING_DETAIL = 200

# What a body's first bytes say it is (_kind_of).
_GZIP_STREAM = "a gzip stream"
_ZLIB_STREAM = "a zlib stream"

# label: (zlib's window bits, the kind of stream it needs, several members allowed)
_ENCODINGS = {
    "gzip": (zlib.MAX_WBITS | 16, _GZIP_STREAM, True),
    # RFC 9110 8.4.1.3: a recipient should treat x-gzip as gzip.
    "x-gzip": (zlib.MAX_WBITS | 16, _GZIP_STREAM, True),
    # RFC 9110 8.4.1.2: deflate is a zlib stream (RFC 1950), not raw deflate.
    "deflate": (zlib.MAX_WBITS, _ZLIB_STREAM, False),
}
_LABEL_OF = {_GZIP_STREAM: "gzip", _ZLIB_STREAM: "deflate"}
# The bytes that can open a JSON text (RFC 8259): a plain body may open like a zlib header.
_JSON_OPENINGS = frozenset(b' \t\r\n{["-0123456789tfn')


def read_push_body(request: "Request", max_bytes: int, timeout_s: float) -> bytes:
    """The request's body, decompressed; raises PushRejected for one too large, in an
    unsupported encoding, whose framing is broken (chunked, or shorter than its
    Content-Length), or that stops arriving for timeout_s seconds.

    A compressed body is held to the size limit once decompressed too, so a gzip bomb is
    refused without being inflated.
    """
    try:
        with _socket_timeout(request.environ, timeout_s):
            raw = _read_at_most(request, max_bytes)
    except TimeoutError:
        raise PushBodyTimedOut(
            f"No part of the body arrived for {timeout_s} seconds: send it whole, and a "
            "Content-Length no larger than it."
        ) from None
    except NoMoreData:
        raise MalformedPushBody(
            "The body ended before its last chunk: its client closed the connection."
        ) from None
    except ParseException as error:
        # gunicorn's chunked reader: a bad chunk size, extension or terminator, a chunk-size
        # line or trailer section too long.
        detail = str(error)[:_FRAMING_DETAIL]
        raise MalformedPushBody(f"The body's framing is broken: {detail}") from None
    return _decode(raw, request.headers.get("Content-Encoding", ""), max_bytes)


@contextlib.contextmanager
def _socket_timeout(environ: Mapping[str, Any], timeout_s: float) -> Iterator[None]:
    """Under gunicorn, a read of the body that waits timeout_s seconds for the next bytes
    raises TimeoutError: a client that declares more than it sends (or sends it slowly)
    would otherwise hold a sync worker until gunicorn kills it, with a 500. Behind nginx,
    which buffers the whole body first, this never fires."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(timeout_s)
    try:
        yield
    finally:
        sock.settimeout(previous)


def parse_push_document(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raises InvalidPush for anything else."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidPush({"_body": [f"Not valid JSON: {error}"]}) from None
    if type(document) is not dict:
        raise InvalidPush({"_body": ["A push must be a JSON object."]})
    return document


def _read_at_most(request: "Request", max_bytes: int) -> bytes:
    """The raw body, never reading more than max_bytes + 1 bytes of it.

    An over-long declared Content-Length is refused before anything is read; without one
    (chunked) the body is counted as it arrives. werkzeug's own limit is not used here: on a
    streamed body it silently returns the first max_bytes instead of refusing.
    """
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise PushTooLarge(f"The body is larger than {max_bytes} bytes.")
    if declared is None and not request.environ.get("wsgi.input_terminated"):
        return b""  # the server cannot tell where such a body ends
    stream = request.input_stream
    # With a declared length, reading stops at it, without one more read to find the end.
    limit = max_bytes + 1 if declared is None else declared
    chunks, size = [], 0
    while size < limit:
        chunk = stream.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > max_bytes:
        raise PushTooLarge(f"The body is larger than {max_bytes} bytes.")
    if declared is not None and size < declared:
        raise MalformedPushBody(
            f"The body ended after {size} of its {declared} bytes (Content-Length): its "
            "client closed the connection."
        )
    return b"".join(chunks)


def _decode(raw: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """The body as its Content-Encoding says; InvalidPush when its bytes are not what the
    label says (a gzip stream labelled deflate, a compressed one unlabelled)."""
    encoding = content_encoding.strip().lower()
    kind = _kind_of(raw)
    if encoding in ("", "identity"):
        if kind in _LABEL_OF and raw[0] not in _JSON_OPENINGS:
            said = f"Content-Encoding {content_encoding!r}" if encoding else "No Content-Encoding"
            advice = f"say Content-Encoding: {_LABEL_OF[kind]}."
            raise InvalidPush({"_body": [f"{said}, but the body is {kind}: {advice}"]})
        return raw
    if encoding not in _ENCODINGS:
        raise UnsupportedPushEncoding(
            f"Content-Encoding {content_encoding!r} is not supported: send gzip or none."
        )
    wbits, needed, members = _ENCODINGS[encoding]
    if kind != needed:
        note = " (RFC 9110's deflate)" if needed == _ZLIB_STREAM else ""
        raise InvalidPush(
            {
                "_body": [
                    f"Content-Encoding {content_encoding!r} needs {needed}{note}, but the body "
                    f"is {kind}."
                ]
            }
        )
    # A gzip body may be several members one after the other (RFC 1952, what `cat a.gz b.gz`
    # or a streaming compressor writes): each is decompressed in turn, all of them held to
    # the limit together. At most _MAX_GZIP_MEMBERS: each member copies what follows it, so
    # thousands of tiny ones would cost quadratic time. A zlib stream (RFC 1950) is one.
    parts, size, rest = [], 0, raw
    for _member in range(_MAX_GZIP_MEMBERS if members else 1):
        decompressor = zlib.decompressobj(wbits)
        try:
            part = decompressor.decompress(rest, max_bytes + 1 - size)
        except zlib.error as error:
            raise InvalidPush({"_body": [f"Not a valid {encoding} stream: {error}"]}) from None
        size += len(part)
        if size > max_bytes:
            raise PushTooLarge(f"The body is larger than {max_bytes} bytes once decompressed.")
        parts.append(part)
        if not decompressor.eof:
            raise InvalidPush(
                {"_body": [f"Not a valid {encoding} stream: truncated or trailing data."]}
            )
        rest = decompressor.unused_data
        if not rest:
            return b"".join(parts)
    if not members:
        raise InvalidPush({"_body": [f"Not a valid {encoding} stream: trailing data."]})
    raise InvalidPush(
        {"_body": [f"More than {_MAX_GZIP_MEMBERS} {encoding} members: send one stream."]}
    )


def _kind_of(raw: bytes) -> str:
    """What a body's first bytes say it is, in words for an answer."""
    if raw[:2] == b"\x1f\x8b":  # RFC 1952 2.3.1
        return _GZIP_STREAM
    # RFC 1950 2.2: method 8 (deflate), a window of at most 32 KiB, and a check that makes the
    # first two bytes a multiple of 31.
    if (
        len(raw) >= 2
        and raw[0] & 0x0F == 8
        and raw[0] >> 4 <= 7
        and (raw[0] << 8 | raw[1]) % 31 == 0
    ):
        return _ZLIB_STREAM
    if raw.lstrip()[:1] in (b"{", b"["):
        return "uncompressed JSON"
    if not raw:
        return "empty"
    return "neither a zlib nor a gzip stream"
