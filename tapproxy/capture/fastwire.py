"""Decoding frames straight from bytes, fast: the reader's common case.

`codec` checks every field in Python, one call per field, on maps msgpack has built:
~25 µs for a small exchange. Here msgspec decodes the payload into typed mirrors of
the wire records, checking each field's type and range in C (~2 µs), and the mirrors
become the model's records. It only ever takes the common shape: anything else (a
str-or-bin field given as bin, a nil where a default applies, str header names, keys
that are not str) raises `Unusual`, and the reader decodes that record with `codec`,
which gives the same record or the error naming the field. A record decoded here is
always the one `codec` would give (tests/capture/test_fastwire.py checks that).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tapproxy.capture.frozen import slot_constructor
from tapproxy.capture.grpc import messages_from_index
from tapproxy.capture.model import (
    MAX_TIME,
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Record,
    Request,
    ResourceSample,
    Response,
    ServiceLog,
    SpanBatch,
    TestCase,
    Timing,
    Tunnel,
    WebSocketEnd,
    WebSocketMessage,
)

__all__ = ["KIND_BYTES", "WIRE_KINDS", "ExchangeWire", "Unusual", "decode_exchange_wire",
           "decode_parties", "decode_record", "exchange_of", "peek_kind", "request_of",
           "response_of", "timing_of"]


class Unusual(Exception):
    """A payload this fast path does not take: decode it with `codec` instead."""


_Time = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME)]
_Size = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Pairs = tuple[tuple[bytes, bytes], ...]


class _Party(msgspec.Struct, frozen=True, gc=False):  # frozen: hashable, for _PARTIES
    name: str
    source: str
    address: str | None = None
    pid: Annotated[int, msgspec.Meta(ge=0, le=1 << 32)] | None = None
    command: str | None = None


class _Request(msgspec.Struct, gc=False):
    method: str
    scheme: str
    host: str
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    path: str
    http_version: str
    headers: _Pairs = ()
    body: bytes = b""
    body_size: _Size | None = None
    body_sha256: bytes | None = None
    trailers: _Pairs | None = None


class _Response(msgspec.Struct, gc=False):
    status: Annotated[int, msgspec.Meta(ge=0, le=999)]
    reason: str = ""
    http_version: str = ""
    headers: _Pairs = ()
    body: bytes = b""
    body_size: _Size | None = None
    body_sha256: bytes | None = None
    trailers: _Pairs | None = None


class _Timing(msgspec.Struct, gc=False):
    request_start: _Time
    request_end: _Time | None = None
    response_start: _Time | None = None
    response_end: _Time | None = None
    client_conn_start: _Time | None = None
    client_tls_done: _Time | None = None
    server_conn_start: _Time | None = None
    server_tcp_done: _Time | None = None
    server_tls_done: _Time | None = None
    error_at: _Time | None = None


class _Error(msgspec.Struct, gc=False):
    kind: str
    message: str = ""


class _GrpcEntry(msgspec.Struct, gc=False):
    from_client: bool
    timestamp: _Time
    length: _Size
    compressed: bool = False


class _Exchange(msgspec.Struct, kw_only=True, gc=False):
    id: str
    caller: _Party
    callee: _Party
    request: _Request
    timing: _Timing
    response: _Response | None = None
    error: _Error | None = None
    test: str | None = None
    test_source: str | None = None
    route: str | None = None
    streamed: bool = False
    websocket: bool = False
    redacted: tuple[str, ...] = ()
    grpc_messages: tuple[_GrpcEntry, ...] = ()


class _TestCase(msgspec.Struct, gc=False):
    name: str
    started: _Time
    ended: _Time | None = None
    outcome: str | None = None


class _WebSocketMessage(msgspec.Struct, gc=False):
    exchange_id: str
    from_client: bool
    is_text: bool
    content: bytes
    timestamp: _Time


class _WebSocketEnd(msgspec.Struct, gc=False):
    exchange_id: str
    timestamp: _Time
    close_code: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    close_reason: str = ""
    error: str | None = None


class _SpanBatch(msgspec.Struct, gc=False):
    received: _Time
    content_type: str
    payload: bytes
    peer: str | None = None


class _Tunnel(msgspec.Struct, kw_only=True, gc=False):
    id: str
    caller: _Party
    callee: _Party
    reason: str
    started: _Time
    ended: _Time | None = None
    bytes_from_client: _Size = 0
    bytes_from_server: _Size = 0
    first_from_client: bytes = b""
    first_from_server: bytes = b""
    error: _Error | None = None
    test: str | None = None
    test_source: str | None = None


class _ServiceLog(msgspec.Struct, gc=False):
    service: str
    stream: str
    line: str
    timestamp: _Time


class _ResourceSample(msgspec.Struct, gc=False):
    service: str
    timestamp: _Time
    pid: _Size
    cpu_percent: float
    rss: _Size
    threads: _Size
    fds: _Size | None = None


_exchange = slot_constructor(Exchange)
_request = slot_constructor(Request)
_response = slot_constructor(Response)
_timing = slot_constructor(Timing)
_party = slot_constructor(Party)
_from_raw = Headers.from_raw


# The same few parties make every exchange of a capture: each is built once. Party is
# frozen, so sharing one is safe; the bound keeps a capture of many names from growing it.
_PARTIES: dict[_Party, Party] = {}


def _who(p: _Party) -> Party:
    party = _PARTIES.get(p)
    if party is None:
        party = _party(p.name, p.source, p.address, p.pid, p.command)
        if len(_PARTIES) >= 4096:
            _PARTIES.clear()
        _PARTIES[p] = party
    return party


def _kept(m: _Request | _Response) -> tuple[int | None, bytes | None]:
    size = m.body_size
    if size is None:
        return None, None  # codec ignores a hash without a size
    if m.body_sha256 is None:
        raise Unusual  # a size without its hash: codec names the missing field
    return size, m.body_sha256


def request_of(q: _Request) -> Request:
    """The model's Request of a wire request."""
    size, sha = _kept(q)
    trailers = q.trailers
    return _request(q.method, q.scheme, q.host, q.port, q.path, q.http_version,
                    _from_raw(q.headers), q.body, size, sha,
                    None if trailers is None else _from_raw(trailers))


def response_of(r: _Response) -> Response:
    """The model's Response of a wire response."""
    size, sha = _kept(r)
    trailers = r.trailers
    return _response(r.status, r.reason, r.http_version, _from_raw(r.headers), r.body,
                     size, sha, None if trailers is None else _from_raw(trailers))


def timing_of(t: _Timing) -> Timing:
    """The model's Timing of a wire exchange's."""
    return _timing(t.request_start, t.request_end, t.response_start, t.response_end,
                   t.client_conn_start, t.client_tls_done, t.server_conn_start,
                   t.server_tcp_done, t.server_tls_done, t.error_at)


def _exchange_of(w: _Exchange) -> Exchange:
    q, r = w.request, w.response
    request = request_of(q)
    response = None if r is None else response_of(r)
    e = w.error
    grpc = ()
    if w.grpc_messages:
        grpc = messages_from_index(
            [{"from_client": m.from_client, "compressed": m.compressed,
              "timestamp": m.timestamp, "length": m.length} for m in w.grpc_messages],
            q.body, None if r is None else r.body)
    return _exchange(
        w.id, _who(w.caller), _who(w.callee), request, timing_of(w.timing), response,
        None if e is None else ErrorInfo(e.kind, e.message), w.test, w.test_source, w.route,
        w.streamed, w.websocket, w.redacted, grpc)


def _tunnel_of(w: _Tunnel) -> Tunnel:
    e = w.error
    return Tunnel(w.id, _who(w.caller), _who(w.callee), w.reason, w.started, w.ended,
                  w.bytes_from_client, w.bytes_from_server, w.first_from_client,
                  w.first_from_server, None if e is None else ErrorInfo(e.kind, e.message),
                  w.test, w.test_source)


def _fields(model: type):
    names = tuple(model.__dataclass_fields__)
    return lambda w: model(*[getattr(w, n) for n in names])


_DECODERS = {
    "exchange": (msgspec.msgpack.Decoder(_Exchange), _exchange_of),
    "test": (msgspec.msgpack.Decoder(_TestCase),
             lambda w: TestCase(w.name, w.started, w.ended, w.outcome)),
    "ws_message": (msgspec.msgpack.Decoder(_WebSocketMessage), _fields(WebSocketMessage)),
    "ws_end": (msgspec.msgpack.Decoder(_WebSocketEnd), _fields(WebSocketEnd)),
    "otlp_spans": (msgspec.msgpack.Decoder(_SpanBatch), _fields(SpanBatch)),
    "tunnel": (msgspec.msgpack.Decoder(_Tunnel), _tunnel_of),
    "service_log": (msgspec.msgpack.Decoder(_ServiceLog), _fields(ServiceLog)),
    "resource_sample": (msgspec.msgpack.Decoder(_ResourceSample), _fields(ResourceSample)),
}


class _Parties(msgspec.Struct, gc=False):
    caller: _Party
    callee: _Party


_parties_decoder = msgspec.msgpack.Decoder(_Parties)


def decode_parties(payload: bytes) -> tuple[Party, Party] | None:
    """Only the caller and callee of an exchange (the rest is skipped, not built), when
    either was named by its process (has a pid), else None; Unusual for any shape but
    the common one."""
    try:
        w = _parties_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unusual from None
    if w.caller.pid is None and w.callee.pid is None:
        return None
    return _who(w.caller), _who(w.callee)


def peek_kind(payload: bytes) -> bytes | None:
    """The `kind` of a record map written with `kind` first as a short str (as tapproxy
    writes every record), as its raw msgpack bytes (b'\\xa8exchange'); None for any other
    layout (the whole map must then be decoded to find it)."""
    first = payload[0] if payload else 0
    if 0x80 <= first <= 0x8F:
        at = 1
    elif first == 0xDE:  # map 16
        at = 3
    else:
        return None
    if not payload.startswith(b"\xa4kind", at):  # no slice built: asked of every record
        return None
    n = payload[at + 5] - 0xA0 if len(payload) > at + 5 else -1
    if not 0 <= n < 32:  # a fixstr
        return None
    return payload[at + 5:at + 6 + n]


#: The kinds this module decodes, by their raw msgpack bytes as peek_kind gives them.
KIND_BYTES = {msgspec.msgpack.encode(k): k for k in _DECODERS}
#: Each record type's `kind` on the wire.
WIRE_KINDS: dict[type, str] = {
    Exchange: "exchange", TestCase: "test", WebSocketMessage: "ws_message",
    WebSocketEnd: "ws_end", SpanBatch: "otlp_spans", Tunnel: "tunnel",
    ServiceLog: "service_log", ResourceSample: "resource_sample"}


def decode_record(kind: str, payload: bytes) -> Record:
    """The record of a known `kind` in `payload`; Unusual for any shape but the common one."""
    decoder, convert = _DECODERS[kind]
    try:
        return convert(decoder.decode(payload))
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unusual from None


#: An exchange record as the file holds it, every field checked as `decode_record`
#: checks it but not built into the model's objects (headers as raw byte pairs): for a
#: pass that reads a few fields of every exchange and the whole of few (`exchange_of`).
ExchangeWire = _Exchange
_exchange_decoder = _DECODERS["exchange"][0]


def decode_exchange_wire(payload: bytes) -> ExchangeWire:
    """The checked wire form of an exchange record; Unusual for any shape but the
    common one, and for a gRPC call (its messages are built from the bodies)."""
    try:
        w = _exchange_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unusual from None
    if w.grpc_messages:
        raise Unusual
    _kept(w.request)  # what exchange_of would refuse, refused now
    if w.response is not None:
        _kept(w.response)
    return w


def exchange_of(w: ExchangeWire) -> Exchange:
    """The model's Exchange of a wire exchange: the record `decode_record` gives."""
    return _exchange_of(w)
