"""Records to msgpack maps and back: the only place that knows field names on the wire.

Decoding takes the fields it knows and ignores the rest, so a newer writer's
additions are skipped; a record kind it does not know decodes to None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Record,
    Request,
    Response,
    SessionHeader,
    SpanBatch,
    TestCase,
    Timing,
    WebSocketEnd,
    WebSocketMessage,
)

__all__ = ["header_from_wire", "header_to_wire", "record_from_wire", "record_to_wire"]

_SE = "surrogateescape"
_TIMING_FIELDS = Timing.__dataclass_fields__.keys()


def _headers_to_wire(h: Headers) -> tuple[tuple[bytes, bytes], ...]:
    return h.raw  # tuples pack as msgpack arrays


def _bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8", _SE)


def _headers_from_wire(raw: list) -> Headers:
    # Decoded only when read: a reader streaming exchanges rarely looks at every header.
    return Headers.from_raw(tuple((_bytes(k), _bytes(v)) for k, v in raw))


def _str_or_bin(s: str) -> str | bytes:
    """Text as msgpack str; text mitmproxy decoded with surrogateescape (bytes that were not
    UTF-8, e.g. in a request path) as bin holding the original bytes."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", _SE)
    return s


def _text(v: str | bytes) -> str:
    return v if isinstance(v, str) else v.decode("utf-8", _SE)


def _party(p: Party) -> dict:
    return {"name": p.name, "source": p.source, "address": p.address}


def _truncation(m: Request | Response) -> dict:
    # Written only for a truncated body (format minor 2), so whole bodies' records are
    # byte for byte what minor 1 wrote.
    if m.body_size is None:
        return {}
    return {"body_size": m.body_size, "body_sha256": m.body_sha256}


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
        },
        "error": None if x.error is None else {"kind": x.error.kind, "message": x.error.message},
        "timing": {k: getattr(t, k) for k in _TIMING_FIELDS if getattr(t, k) is not None},
        "test": x.test,
        "test_source": x.test_source,
        "route": x.route,
        "streamed": x.streamed,
        "websocket": x.websocket,
        "redacted": list(x.redacted),
    }


def _exchange_from_wire(d: dict) -> Exchange:
    q = d["request"]
    r = d.get("response")
    e = d.get("error")
    return Exchange(
        id=d["id"],
        caller=Party(**_pick(d["caller"], ("name", "source", "address"))),
        callee=Party(**_pick(d["callee"], ("name", "source", "address"))),
        request=Request(
            method=_text(q["method"]),
            scheme=q["scheme"],
            host=q["host"],
            port=q["port"],
            path=_text(q["path"]),
            http_version=q["http_version"],
            headers=_headers_from_wire(q.get("headers", ())),
            body=q.get("body", b""),
            body_size=q.get("body_size"),
            body_sha256=q.get("body_sha256"),
        ),
        response=None
        if r is None
        else Response(
            status=r["status"],
            reason=_text(r.get("reason", "")),
            http_version=r.get("http_version", ""),
            headers=_headers_from_wire(r.get("headers", ())),
            body=r.get("body", b""),
            body_size=r.get("body_size"),
            body_sha256=r.get("body_sha256"),
        ),
        error=None if e is None else ErrorInfo(kind=e["kind"], message=e.get("message", "")),
        timing=Timing(**_pick(d["timing"], _TIMING_FIELDS)),
        test=d.get("test"),
        test_source=d.get("test_source"),
        route=d.get("route"),
        streamed=d.get("streamed", False),
        websocket=d.get("websocket", False),
        redacted=tuple(d.get("redacted", ())),
    )


def _pick(d: dict, keys) -> dict:
    return {k: d[k] for k in keys if k in d}


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


_TO_WIRE: dict[type, Callable[[Any], dict]] = {
    SpanBatch: _span_batch_to_wire,
    Exchange: _exchange_to_wire,
    TestCase: _test_to_wire,
    WebSocketMessage: _ws_message_to_wire,
    WebSocketEnd: _ws_end_to_wire,
}

_FROM_WIRE: dict[str, Callable[[dict], Record]] = {
    "otlp_spans": lambda d: SpanBatch(**_pick(d, ("received", "content_type", "payload", "peer"))),
    "exchange": _exchange_from_wire,
    "test": lambda d: TestCase(**_pick(d, ("name", "started", "ended", "outcome"))),
    "ws_message": lambda d: WebSocketMessage(
        **_pick(d, ("exchange_id", "from_client", "is_text", "content", "timestamp"))
    ),
    "ws_end": lambda d: WebSocketEnd(
        **_pick(d, ("exchange_id", "timestamp", "close_code", "close_reason", "error"))
    ),
}


def record_to_wire(record: Record) -> dict:
    """The msgpack map for one record."""
    return _TO_WIRE[type(record)](record)


def record_from_wire(d: dict) -> Record | None:
    """The record a msgpack map holds; None for a kind this version does not know.

    Raises KeyError/TypeError/ValueError for a known kind with missing or mistyped fields.
    """
    decode = _FROM_WIRE.get(d.get("kind"))  # type: ignore[arg-type]
    return None if decode is None else decode(d)


def header_to_wire(h: SessionHeader) -> dict:
    return {"kind": "header", "format": "tapproxy-capture", "version": h.version,
            "minor": h.minor, "created": h.created, "tool": h.tool, "meta": h.meta}


def header_from_wire(d: dict) -> SessionHeader:
    return SessionHeader(version=d["version"], minor=d.get("minor", 0), created=d["created"],
                         tool=d.get("tool", ""), meta=d.get("meta") or {})
