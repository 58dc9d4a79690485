"""Bodies the proxy streams instead of buffering, and what of them the record keeps.

mitmproxy buffers a whole body before passing it on unless `stream` is set on the
message; with `store_streamed_bodies` it would keep a streamed body whole in memory too.
tapproxy streams every body it cannot bound in advance (no length, SSE) or that is
longer than `--max-body`, and sets `stream` to a BodyTap: each piece passes through
unchanged, and the tap keeps the first `max_body` bytes, the length and the SHA-256.
Memory per exchange is therefore at most `max_body`, whatever the body's size.
gRPC bodies always stream (a client- or bidi-streaming call needs each message passed on
as it comes) through a GrpcTap, which also notes when each message completed.
"""

from __future__ import annotations

import hashlib

from mitmproxy import http

from tapproxy.capture.grpc import Frame, MessageClock

__all__ = ["BodyTap", "GrpcTap", "body_of", "grpc_frames", "is_grpc", "request_streams",
           "response_streams", "response_tap"]


class BodyTap:
    """mitmproxy `stream` callable: passes each piece on, keeps a bounded copy."""

    __slots__ = ("_hash", "_kept", "_limit", "size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept = bytearray()
        self._hash = hashlib.sha256()
        self.size = 0

    def __call__(self, data: bytes) -> bytes:
        if data:  # b"" marks the end of the body
            self.size += len(data)
            self._hash.update(data)
            room = self._limit - len(self._kept)
            if room > 0:
                self._kept += data[:room]
        return data

    def kept(self) -> tuple[bytes, int | None, bytes | None]:
        """(body, whole length, SHA-256): the last two None when the body was kept whole."""
        if self.size <= self._limit:
            return bytes(self._kept), None, None
        return bytes(self._kept), self.size, self._hash.digest()


class GrpcTap(BodyTap):
    """A BodyTap for a gRPC body that also notes when each message completed.

    Only messages that start within the kept bytes are timed: the others are not in the
    record, so their times are not kept either (memory stays bounded by `max_body`).
    """

    __slots__ = ("clock",)

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.clock = MessageClock()

    def __call__(self, data: bytes) -> bytes:
        if self.size <= self._limit:
            self.clock(data)
        return super().__call__(data)


def grpc_frames(m: http.Message | None) -> list[Frame] | None:
    """When each message of a gRPC body arrived, if the body went through a GrpcTap."""
    return m.stream.clock.frames if m is not None and isinstance(m.stream, GrpcTap) else None


def is_grpc(headers: http.Headers) -> bool:
    """Content-type application/grpc or application/grpc+<codec> (raw bytes, hot path)."""
    for k, v in headers.fields:
        if len(k) == 12 and k.lower() == b"content-type":  # the length first: no copy
            v = v.split(b";")[0].strip().lower()
            return v == b"application/grpc" or v.startswith(b"application/grpc+")
    return False


def body_of(m: http.Message) -> tuple[bytes, int | None, bytes | None]:
    """(body, whole length, SHA-256) of a message: from its tap if it was streamed."""
    if isinstance(m.stream, BodyTap):
        return m.stream.kept()
    return m.raw_content or b"", None, None


def _length(fields) -> int | None:
    for k, v in fields:  # raw bytes: no decoding on the hot path
        if len(k) == 14 and k.lower() == b"content-length":
            v = v.strip()
            return int(v) if v.isdigit() else None
    return None


def response_streams(flow: http.HTTPFlow, max_body: int) -> bool:
    """Pass the response body on as it arrives: SSE, unknown length, or above max_body."""
    r = flow.response
    assert r is not None
    if r.status_code in (101, 204, 304) or flow.request.method == "HEAD":
        return False
    has_length = False
    for k, v in r.headers.fields:
        name = k.lower()
        if name == b"content-type" and v.lstrip().lower().startswith(b"text/event-stream"):
            return True
        has_length = has_length or name == b"content-length"
    if not has_length:
        return True
    length = _length(r.headers.fields)
    return length is not None and length > max_body


def response_tap(flow: http.HTTPFlow, max_body: int) -> BodyTap | None:
    """The tap to stream a response through (gRPC, SSE, unknown length or above
    max_body), or None to let mitmproxy buffer it: `is_grpc`, then `response_streams`,
    read in one pass over the raw headers (the responseheaders hook of every exchange)."""
    r = flow.response
    assert r is not None
    no_body = r.status_code in (101, 204, 304) or flow.request.method == "HEAD"
    length: bytes | None = None
    first_type = True
    for k, v in r.headers.fields:
        if len(k) not in (12, 14):  # neither name: no lower-case copy made
            continue
        name = k.lower()
        if name == b"content-type":
            if first_type:  # the first one says gRPC or not, as in is_grpc
                first_type = False
                t = v.split(b";")[0].strip().lower()
                if t == b"application/grpc" or t.startswith(b"application/grpc+"):
                    return GrpcTap(max_body)
            if v.lstrip().lower().startswith(b"text/event-stream"):
                return None if no_body else BodyTap(max_body)
        elif name == b"content-length" and length is None:
            length = v.strip()
    if no_body:
        return None
    if length is None or (length.isdigit() and int(length) > max_body):
        return BodyTap(max_body)
    return None


def request_streams(flow: http.HTTPFlow, max_body: int) -> bool:
    """Pass the request body on as it arrives: chunked (HTTP/1), or above max_body.

    An HTTP/2 request body without a Content-Length is still buffered: its headers do
    not say whether a body follows."""
    h = flow.request.headers
    length = _length(h.fields)
    if length is not None:
        return length > max_body
    return any(len(k) == 17 and k.lower() == b"transfer-encoding" and b"chunked" in v.lower()
               for k, v in h.fields)


def body_size(m: http.Message) -> int:
    """The length of a message's whole body, also of one streamed and kept in part."""
    body, whole, _ = body_of(m)
    return len(body) if whole is None else whole
