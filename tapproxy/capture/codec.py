"""Records to msgpack maps and back: the only place that knows field names on the wire.

Decoding takes the fields it knows and ignores the rest, so a newer writer's
additions are skipped; a record kind it does not know decodes to None. It checks the
type (and for numbers the range) of every field it takes, here and only here, so the
records every reader gets are well-formed: a bad field is a CaptureError naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import chain
from typing import Any

from tapproxy.capture.grpc import index_messages, messages_from_index
from tapproxy.capture.model import (
    MAX_TIME,
    ErrorInfo,
    Exchange,
    GrpcMessage,
    Headers,
    Party,
    Record,
    Request,
    ResourceSample,
    Response,
    ServiceLog,
    SessionHeader,
    SpanBatch,
    TestCase,
    Timing,
    Tunnel,
    WebSocketEnd,
    WebSocketMessage,
)
from tapproxy.errors import CaptureError

__all__ = ["check_reads_back", "header_from_wire", "header_to_wire", "record_from_wire",
           "record_to_wire"]

_SE = "surrogateescape"
_TIMING_FIELDS = Timing.__dataclass_fields__.keys()


def _headers_to_wire(h: Headers) -> tuple[tuple[bytes, bytes], ...]:
    return h.raw  # tuples pack as msgpack arrays


def _str_or_bin(s: str) -> str | bytes:
    """Text as msgpack str; text mitmproxy decoded with surrogateescape (bytes that were not
    UTF-8, e.g. in a request path) as bin holding the original bytes."""
    if s.isascii():  # nearly every method, path and reason: no copy made to find out
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", _SE)
    return s


def _party(p: Party) -> dict:
    d = {"name": p.name, "source": p.source, "address": p.address}
    if p.pid is not None:  # a local process's (minor 6): other parties' records as before
        d["pid"] = p.pid
        d["command"] = p.command or ""
    return d


def _truncation(m: Request | Response) -> dict:
    # Written only for a truncated body (format minor 2), so whole bodies' records are
    # byte for byte what minor 1 wrote.
    if m.body_size is None:
        return {}
    return {"body_size": m.body_size, "body_sha256": m.body_sha256}


def _trailers_to_wire(t: Headers | None) -> dict:
    return {} if t is None else {"trailers": _headers_to_wire(t)}


def _exchange_to_wire(x: Exchange) -> dict:
    q = x.request
    r = x.response
    t = x.timing
    return {
        "kind": "exchange",
        "id": x.id,
        "caller": _party(x.caller),
        "callee": _party(x.callee),
        "request": {
            "method": _str_or_bin(q.method),
            "scheme": q.scheme,
            "host": q.host,
            "port": q.port,
            "path": _str_or_bin(q.path),
            "http_version": q.http_version,
            "headers": _headers_to_wire(q.headers),
            "body": q.body,
            **_truncation(q),
            **_trailers_to_wire(q.trailers),
        },
        "response": None
        if r is None
        else {
            "status": r.status,
            "reason": _str_or_bin(r.reason),
            "http_version": r.http_version,
            "headers": _headers_to_wire(r.headers),
            "body": r.body,
            **_truncation(r),
            **_trailers_to_wire(r.trailers),
        },
        "error": None if x.error is None else {"kind": x.error.kind, "message": x.error.message},
        "timing": {k: getattr(t, k) for k in _TIMING_FIELDS if getattr(t, k) is not None},
        "test": x.test,
        "test_source": x.test_source,
        "route": x.route,
        "streamed": x.streamed,
        "websocket": x.websocket,
        "redacted": list(x.redacted),
        **({"grpc_messages": index_messages(x.grpc_messages)} if x.grpc_messages else {}),
    }


def _test_to_wire(t: TestCase) -> dict:
    return {"kind": "test", "name": t.name, "started": t.started, "ended": t.ended,
            "outcome": t.outcome}


def _ws_message_to_wire(m: WebSocketMessage) -> dict:
    return {"kind": "ws_message", "exchange_id": m.exchange_id, "from_client": m.from_client,
            "is_text": m.is_text, "content": m.content, "timestamp": m.timestamp}


def _ws_end_to_wire(m: WebSocketEnd) -> dict:
    return {"kind": "ws_end", "exchange_id": m.exchange_id, "timestamp": m.timestamp,
            "close_code": m.close_code, "close_reason": m.close_reason, "error": m.error}


def _span_batch_to_wire(b: SpanBatch) -> dict:
    return {"kind": "otlp_spans", "received": b.received, "content_type": b.content_type,
            "payload": b.payload, "peer": b.peer}


def _error(e: ErrorInfo | None) -> dict | None:
    return None if e is None else {"kind": e.kind, "message": e.message}


def _tunnel_to_wire(t: Tunnel) -> dict:
    return {"kind": "tunnel", "id": t.id, "caller": _party(t.caller), "callee": _party(t.callee),
            "reason": t.reason, "started": t.started, "ended": t.ended,
            "bytes_from_client": t.bytes_from_client, "bytes_from_server": t.bytes_from_server,
            "first_from_client": t.first_from_client, "first_from_server": t.first_from_server,
            "error": _error(t.error), "test": t.test, "test_source": t.test_source}


_LOG_FIELDS = ("service", "stream", "line", "timestamp")
_RESOURCE_FIELDS = ("service", "timestamp", "pid", "cpu_percent", "rss", "threads", "fds")


def _fields_to_wire(kind: str, names: tuple[str, ...]) -> Callable[[Any], dict]:
    return lambda r: {"kind": kind, **{n: getattr(r, n) for n in names}}


_TO_WIRE: dict[type, Callable[[Any], dict]] = {
    ServiceLog: _fields_to_wire("service_log", _LOG_FIELDS),
    ResourceSample: _fields_to_wire("resource_sample", _RESOURCE_FIELDS),
    SpanBatch: _span_batch_to_wire,
    Exchange: _exchange_to_wire,
    TestCase: _test_to_wire,
    WebSocketMessage: _ws_message_to_wire,
    WebSocketEnd: _ws_end_to_wire,
    Tunnel: _tunnel_to_wire,
}

def record_to_wire(record: Record) -> dict:
    """The msgpack map for one record."""
    return _TO_WIRE[type(record)](record)


def header_to_wire(h: SessionHeader) -> dict:
    return {"kind": "header", "format": "tapproxy-capture", "version": h.version,
            "minor": h.minor, "created": h.created, "tool": h.tool, "meta": h.meta}


# --- decoding: every field's type is checked once, here -------------------------------------
#
# Exact type tests (`type(v) is int`, not isinstance) keep bools out of ints and are the
# cheapest check; the message is built only on the error path.

_MISSING: Any = object()
_MAX_SIZE = 2**63 - 1  # a body's length, as int64 can hold it
_STR = (str,)
_BIN = (bytes,)
_STR_OR_BIN = (str, bytes)
_INT = (int,)
_BOOL = (bool,)
_NUMBER = (float, int)
_MAP = (dict,)
_TUPLE, _TWO, _BYTES = {tuple}, {2}, {bytes}
_LIST = (tuple, list)  # the reader decodes arrays as tuples; lists from anyone else
_NAMES = {str: "str", bytes: "bin", int: "int", bool: "bool", dict: "map", list: "array",
          tuple: "array", float: "float"}


def _bad(where: str, key: str, expected: str, d: dict) -> CaptureError:
    if key not in d:
        return CaptureError(f"field {where}{key} is missing ({expected} expected)")
    v = d[key]
    if v is None:
        return CaptureError(f"field {where}{key} is nil, not {expected}")
    shown = repr(v)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    what = _NAMES.get(type(v), type(v).__name__)
    return CaptureError(f"field {where}{key} is {what} {shown}, not {expected}")


def _expected(types: tuple) -> str:
    return " or ".join(_NAMES[t] for t in types)


def _get(d: dict, key: str, types: tuple, where: str = "", default: Any = _MISSING) -> Any:
    """d[key] if its type is one of `types`; `default` if it is nil or missing and optional."""
    v = d.get(key)
    if type(v) in types:
        return v
    if v is None and default is not _MISSING:
        return default
    raise _bad(where, key, _expected(types), d)


def _text(d: dict, key: str, where: str, default: Any = _MISSING) -> str:
    """A str-or-bin field as text (bin that is not UTF-8 kept with surrogateescape)."""
    v = _get(d, key, _STR_OR_BIN, where, default)
    return v if type(v) is not bytes else v.decode("utf-8", _SE)


def _int(d: dict, key: str, where: str, low: int, high: int, default: Any = _MISSING) -> Any:
    v = d.get(key)
    if type(v) is int and low <= v <= high:
        return v
    if v is None and default is not _MISSING:
        return default
    return _raise_int(d, key, where, low, high)


def _raise_int(d: dict, key: str, where: str, low: int, high: int):
    v = d.get(key)
    if type(v) is int:
        raise CaptureError(f"field {where}{key} is {v}, out of range {low}..{high}")
    raise _bad(where, key, "int", d)


def _time(d: dict, key: str, where: str = "", default: Any = _MISSING) -> Any:
    """A timestamp: ns since the epoch, within what datetime and OTLP (int64) can hold."""
    return _int(d, key, where, 0, MAX_TIME, default)


def _map(d: dict, key: str, where: str = "", default: Any = _MISSING) -> Any:
    return _get(d, key, _MAP, where, default)


def _headers_from_wire(d: dict, key: str, where: str) -> Headers:
    raw = _get(d, key, _LIST, where, ())
    # The common case checked by builtins alone: a tuple of (bin, bin) tuples, kept as is.
    if (type(raw) is tuple and set(map(type, raw)) <= _TUPLE and set(map(len, raw)) <= _TWO
            and set(map(type, chain.from_iterable(raw))) <= _BYTES):
        return Headers.from_raw(raw)  # decoded to text only when read
    pairs = []
    for i, pair in enumerate(raw):
        if type(pair) not in _LIST or len(pair) != 2:
            raise _bad(where, f"{key}[{i}]", "a [name, value] array", {f"{key}[{i}]": pair})
        name, value = pair
        if type(name) is not bytes:
            if type(name) is not str:
                raise _bad(where, f"{key}[{i}][0]", "bin or str", {f"{key}[{i}][0]": name})
            name = name.encode("utf-8", _SE)
        if type(value) is not bytes:
            if type(value) is not str:
                raise _bad(where, f"{key}[{i}][1]", "bin or str", {f"{key}[{i}][1]": value})
            value = value.encode("utf-8", _SE)
        pairs.append((name, value))
    return Headers.from_raw(tuple(pairs))


def _kept_in_part(m: dict, where: str) -> dict:
    """body_size and body_sha256 (format minor 2): both or neither."""
    size = _int(m, "body_size", where, 0, _MAX_SIZE, None)
    if size is None:
        return {}
    return {"body_size": size, "body_sha256": _get(m, "body_sha256", _BIN, where)}


def _trailers_from_wire(m: dict, where: str) -> Headers | None:
    """Trailers (format minor 4): absent or nil when none were sent."""
    return None if m.get("trailers") is None else _headers_from_wire(m, "trailers", where)


def _grpc_from_wire(d: dict, request_body: bytes, response_body: bytes | None
                    ) -> tuple[GrpcMessage, ...]:
    """gRPC messages (format minor 4), cut from the bodies by the recorded lengths."""
    items = _get(d, "grpc_messages", _LIST, "", ())
    index = []
    for i, m in enumerate(items):
        if type(m) is not dict:
            raise _bad("", f"grpc_messages[{i}]", "map", {f"grpc_messages[{i}]": m})
        where = f"grpc_messages[{i}]."
        index.append({"from_client": _get(m, "from_client", _BOOL, where),
                      "compressed": _get(m, "compressed", _BOOL, where, False),
                      "timestamp": _time(m, "timestamp", where),
                      "length": _int(m, "length", where, 0, _MAX_SIZE)})
    return messages_from_index(index, request_body, response_body)


def _party_from_wire(d: dict, key: str) -> Party:
    p = _map(d, key)
    where = key + "."
    return Party(_get(p, "name", _STR, where), _get(p, "source", _STR, where),
                 _get(p, "address", _STR, where, None),
                 _int(p, "pid", where, 0, 1 << 32, None),
                 _get(p, "command", _STR, where, None))


def _timing_from_wire(d: dict) -> Timing:
    t = _map(d, "timing")
    # Only the phases present are checked one by one: most exchanges have 5-8 of 10.
    phases = {k: _time(t, k, "timing.", None) for k in _TIMING_FIELDS if k in t}
    if "request_start" not in phases or phases["request_start"] is None:
        raise _bad("timing.", "request_start", "int", t)
    return Timing(**phases)


def _strings(d: dict, key: str) -> tuple[str, ...]:
    items = _get(d, key, _LIST, "", ())
    for i, item in enumerate(items):
        if type(item) is not str:
            raise _bad("", f"{key}[{i}]", "str", {f"{key}[{i}]": item})
    return tuple(items)


def _exchange_from_wire(d: dict) -> Exchange:
    q = _map(d, "request")
    r = _map(d, "response", "", None)
    e = _map(d, "error", "", None)
    request_body = _get(q, "body", _BIN, "request.", b"")
    response_body = None if r is None else _get(r, "body", _BIN, "response.", b"")
    return Exchange(
        id=_get(d, "id", _STR),
        caller=_party_from_wire(d, "caller"),
        callee=_party_from_wire(d, "callee"),
        request=Request(
            method=_text(q, "method", "request."),
            scheme=_get(q, "scheme", _STR, "request."),
            host=_get(q, "host", _STR, "request."),
            port=_int(q, "port", "request.", 0, 65535),
            path=_text(q, "path", "request."),
            http_version=_get(q, "http_version", _STR, "request."),
            headers=_headers_from_wire(q, "headers", "request."),
            body=request_body,
            **_kept_in_part(q, "request."),
            trailers=_trailers_from_wire(q, "request."),
        ),
        response=None
        if r is None
        else Response(
            status=_int(r, "status", "response.", 0, 999),
            reason=_text(r, "reason", "response.", ""),
            http_version=_get(r, "http_version", _STR, "response.", ""),
            headers=_headers_from_wire(r, "headers", "response."),
            body=response_body,
            **_kept_in_part(r, "response."),
            trailers=_trailers_from_wire(r, "response."),
        ),
        error=None if e is None else ErrorInfo(_get(e, "kind", _STR, "error."),
                                                _get(e, "message", _STR, "error.", "")),
        timing=_timing_from_wire(d),
        test=_get(d, "test", _STR, "", None),
        test_source=_get(d, "test_source", _STR, "", None),
        route=_get(d, "route", _STR, "", None),
        streamed=_get(d, "streamed", _BOOL, "", False),
        websocket=_get(d, "websocket", _BOOL, "", False),
        redacted=_strings(d, "redacted"),
        grpc_messages=_grpc_from_wire(d, request_body, response_body),
    )


def _test_from_wire(d: dict) -> TestCase:
    return TestCase(_get(d, "name", _STR), _time(d, "started"), _time(d, "ended", "", None),
                    _get(d, "outcome", _STR, "", None))


def _ws_message_from_wire(d: dict) -> WebSocketMessage:
    return WebSocketMessage(_get(d, "exchange_id", _STR), _get(d, "from_client", _BOOL),
                            _get(d, "is_text", _BOOL), _get(d, "content", _BIN),
                            _time(d, "timestamp"))


def _ws_end_from_wire(d: dict) -> WebSocketEnd:
    return WebSocketEnd(_get(d, "exchange_id", _STR), _time(d, "timestamp"),
                        _int(d, "close_code", "", 0, 65535, None),
                        _get(d, "close_reason", _STR, "", ""), _get(d, "error", _STR, "", None))


def _span_batch_from_wire(d: dict) -> SpanBatch:
    return SpanBatch(_time(d, "received"), _get(d, "content_type", _STR),
                     _get(d, "payload", _BIN), _get(d, "peer", _STR, "", None))


def _tunnel_from_wire(d: dict) -> Tunnel:
    e = _map(d, "error", "", None)
    return Tunnel(
        id=_get(d, "id", _STR),
        caller=_party_from_wire(d, "caller"),
        callee=_party_from_wire(d, "callee"),
        reason=_get(d, "reason", _STR),
        started=_time(d, "started"),
        ended=_time(d, "ended", "", None),
        bytes_from_client=_int(d, "bytes_from_client", "", 0, _MAX_SIZE, 0),
        bytes_from_server=_int(d, "bytes_from_server", "", 0, _MAX_SIZE, 0),
        first_from_client=_get(d, "first_from_client", _BIN, "", b""),
        first_from_server=_get(d, "first_from_server", _BIN, "", b""),
        error=None if e is None else ErrorInfo(_get(e, "kind", _STR, "error."),
                                                _get(e, "message", _STR, "error.", "")),
        test=_get(d, "test", _STR, "", None),
        test_source=_get(d, "test_source", _STR, "", None),
    )


def _service_log_from_wire(d: dict) -> ServiceLog:
    return ServiceLog(_get(d, "service", _STR), _get(d, "stream", _STR), _get(d, "line", _STR),
                      _time(d, "timestamp"))


def _resource_sample_from_wire(d: dict) -> ResourceSample:
    return ResourceSample(_get(d, "service", _STR), _time(d, "timestamp"),
                          _int(d, "pid", "", 0, _MAX_SIZE),
                          float(_get(d, "cpu_percent", _NUMBER)),
                          _int(d, "rss", "", 0, _MAX_SIZE), _int(d, "threads", "", 0, _MAX_SIZE),
                          _int(d, "fds", "", 0, _MAX_SIZE, None))


_FROM_WIRE: dict[str, Callable[[dict], Record]] = {
    "service_log": _service_log_from_wire,
    "resource_sample": _resource_sample_from_wire,
    "exchange": _exchange_from_wire,
    "test": _test_from_wire,
    "ws_message": _ws_message_from_wire,
    "ws_end": _ws_end_from_wire,
    "otlp_spans": _span_batch_from_wire,
    "tunnel": _tunnel_from_wire,
}


def record_from_wire(d: dict) -> Record | None:
    """The record a msgpack map holds; None for a kind this version does not know.

    Raises CaptureError naming the field (`request.method`, `timing.request_start`) for a
    known kind with a missing, mistyped or out-of-range field.
    """
    decode = _FROM_WIRE.get(_get(d, "kind", _STR))
    return None if decode is None else decode(d)


def header_from_wire(d: dict) -> SessionHeader:
    """The session header a msgpack map holds (CaptureError naming a bad field)."""
    return SessionHeader(version=_int(d, "version", "", 0, 2**31),
                         minor=_int(d, "minor", "", 0, 2**31, 0), created=_time(d, "created"),
                         tool=_get(d, "tool", _STR, "", ""), meta=_map(d, "meta", "", {}))


def check_reads_back(record: Record, wire: dict) -> None:
    """Raise CaptureError naming the field unless the reader gets `record` back from
    `wire` (its msgpack map): the writer's check is the reader's own, not a copy."""
    back = record_from_wire(wire)
    if back != record:
        where, value = _difference(record, back)
        raise CaptureError(f"field {where} would not read back as written ({value!r:.40})")


def _difference(mine: object, back: object, where: str = "") -> tuple[str, object]:
    """The first field where `back` differs from `mine`, and its value in `mine`."""
    if dataclasses.is_dataclass(mine) and type(back) is type(mine):
        for f in dataclasses.fields(mine):
            a, b = getattr(mine, f.name), getattr(back, f.name)
            if a != b:
                return _difference(a, b, f"{where}{f.name}.")
    elif isinstance(mine, tuple) and isinstance(back, tuple) and len(mine) == len(back):
        for i, (a, b) in enumerate(zip(mine, back, strict=True)):
            if a != b:
                return _difference(a, b, f"{where[:-1]}[{i}].")
    return where[:-1] or "(record)", mine
