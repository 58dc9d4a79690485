"""Exchanges and tunnels as JSON objects (one per line): for jq, scripts and other tools."""

from __future__ import annotations

import base64
from dataclasses import asdict

from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import Exchange, Tunnel
from tapproxy.errors import CaptureError

__all__ = ["exchange_json", "tunnel_json"]



def _party(p) -> dict:
    """A party's fields; a local process's PID and command line only when it has them."""
    return {k: v for k, v in asdict(p).items() if v is not None or k not in ("pid", "command")}

def _body(msg) -> dict:
    """The decoded body as text when it is UTF-8, else base64 of the raw bytes; for a
    body kept in part, also its whole length and SHA-256 (hex)."""
    part = {} if not msg.body_truncated else {
        "body_size": msg.body_size, "body_sha256": msg.body_sha256.hex()}
    try:
        return {"body": decoded_body(msg).decode("utf-8"), **part}
    except (UnicodeDecodeError, CaptureError):
        return {"body_base64": base64.b64encode(msg.body).decode(), **part}


def exchange_json(n: int, x: Exchange) -> dict:
    q, r = x.request, x.response
    t = x.timing
    return {
        "kind": "exchange",
        "n": n,
        "id": x.id,
        "test": x.test,
        "test_source": x.test_source,
        "caller": _party(x.caller),
        "callee": _party(x.callee),
        "method": q.method,
        "url": q.url,
        "status": x.status,
        "failed": x.failed,
        "error": None if x.error is None else {"kind": x.error.kind, "message": x.error.message},
        "duration_ms": round(t.duration_ns / 1e6, 3),
        "timing_ns": {k: getattr(t, k) for k in t.__dataclass_fields__
                      if getattr(t, k) is not None},
        "request": {"http_version": q.http_version, "headers": [list(h) for h in q.headers],
                    **_body(q)},
        "response": None if r is None else {
            "http_version": r.http_version, "reason": r.reason,
            "headers": [list(h) for h in r.headers], **_body(r),
            **({} if r.trailers is None else {"trailers": [list(h) for h in r.trailers]})},
        **({} if not x.is_grpc else {"grpc": {
            "status": x.grpc_status, "status_name": x.grpc_status_name,
            "message": x.grpc_message,
            "messages": [{"from_client": m.from_client, "compressed": m.compressed,
                          "timestamp_ns": m.timestamp, "size": len(m.data)}
                         for m in x.grpc_messages]}}),
        "streamed": x.streamed,
        "websocket": x.websocket,
        "route": x.route,
        "redacted": list(x.redacted),
    }


def tunnel_json(label: str, t: Tunnel) -> dict:
    """A tunnel row: `kind` tells it from an exchange; first bytes as base64."""
    return {
        "kind": "tunnel",
        "n": label,
        "id": t.id,
        "test": t.test,
        "test_source": t.test_source,
        "caller": _party(t.caller),
        "callee": _party(t.callee),
        "reason": t.reason,
        "why": t.why,
        "error": None if t.error is None else {"kind": t.error.kind, "message": t.error.message},
        "started_ns": t.started,
        "ended_ns": t.ended,
        "duration_ms": None if t.ended is None else round(t.duration_ns / 1e6, 3),
        "bytes_from_client": t.bytes_from_client,
        "bytes_from_server": t.bytes_from_server,
        "first_from_client_base64": base64.b64encode(t.first_from_client).decode(),
        "first_from_server_base64": base64.b64encode(t.first_from_server).decode(),
    }
