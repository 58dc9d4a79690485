"""What the page shows of one exchange when it is clicked: headers, bodies decoded and
pretty-printed, gRPC messages and WebSocket frames, timing phases, trailers.

Everything here is recorded, so untrusted: it becomes JSON strings the page puts in the
document as text, never as markup. Bodies are cut at `BODY_LIMIT` characters so that one
large payload does not weigh on every report that holds it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

from tapproxy.capture.encoding import decode_body, decoded_body
from tapproxy.capture.model import Exchange, Request, Response, WebSocketMessage
from tapproxy.capture.protobuf import decode_raw
from tapproxy.contract.model import Mismatch
from tapproxy.errors import CaptureError

__all__ = ["BODY_LIMIT", "exchange_detail"]

BODY_LIMIT = 16_384
_MESSAGES_LIMIT = 100  # gRPC messages or WebSocket frames shown per exchange


def _cut(text: str, limit: int = BODY_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more)"


def _body(msg: Request | Response) -> str:
    """The body as a person reads it: JSON indented, text as is, binary as its size."""
    if msg.body_truncated:
        note = f"(only the first {len(msg.body)} of {msg.body_size} bytes were kept)\n"
    else:
        note = ""
    if not msg.body:
        return note + "(no body)"
    try:
        data = decoded_body(msg)
    except CaptureError as e:
        return note + f"({len(msg.body)} bytes, cannot decode: {e})"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return note + f"({len(data)} bytes of binary {msg.content_type or 'data'})"
    if "json" in msg.content_type or text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return note + _cut(text)


def _message(msg: Request | Response, line: str, grpc: bool) -> dict:
    return {"line": line, "headers": [list(h) for h in msg.headers],
            "body": "(gRPC: see the messages)" if grpc and not msg.body_truncated
            else _body(msg),
            "trailers": None if msg.trailers is None else [list(h) for h in msg.trailers]}


def _grpc(x: Exchange, t0: int) -> list[list]:
    codings = {True: x.request.headers.get("grpc-encoding"),
               False: x.response.headers.get("grpc-encoding") if x.response else None}
    out = []
    for m in x.grpc_messages[:_MESSAGES_LIMIT]:
        data = m.data
        text = None
        if m.compressed:
            try:
                data = decode_body(data, codings[m.from_client])
            except CaptureError as e:
                text = f"(cannot decompress: {e})"
        if text is None:
            decoded = decode_raw(data)
            text = (f"(not protobuf: {len(data)} bytes)" if decoded is None
                    else decoded or "(empty message)")
        out.append([1 if m.from_client else 0, round((m.timestamp - t0) / 1e6, 3),
                    _cut(text, 4096)])
    return out


def _frames(frames: Sequence[WebSocketMessage], t0: int) -> list[list]:
    out = []
    for f in frames[:_MESSAGES_LIMIT]:
        text = (f.content.decode("utf-8", "replace") if f.is_text
                else f"({len(f.content)} bytes binary)")
        out.append([1 if f.from_client else 0, round((f.timestamp - t0) / 1e6, 3),
                    _cut(text, 4096)])
    return out


def _mismatch(m: Mismatch) -> dict:
    return {"kind": m.kind, "message": m.message, "where": m.where, "side": m.side,
            "expected": m.expected, "actual": m.actual, "contract": str(m.contract),
            "excerpt": m.excerpt}


def exchange_detail(x: Exchange, frames: Sequence[WebSocketMessage] = (),
                    mismatches: Sequence[Mismatch] = ()) -> dict:
    """One exchange's detail as plain JSON values (times in ms from its request start)."""
    q, r, t = x.request, x.response, x.timing
    phases = [[k, round((v - t.request_start) / 1e6, 3)] for k in t.__dataclass_fields__
              if (v := getattr(t, k)) is not None and k != "request_start"]
    detail: dict = {
        "id": x.id, "test": x.test, "caller": [x.caller.name, x.caller.source],
        "callee": [x.callee.name, x.callee.source], "timing": phases,
        "request": _message(q, f"{q.method} {q.url} {q.http_version}", x.is_grpc),
    }
    if r is not None:
        detail["response"] = _message(r, f"{r.http_version} {r.status} {r.reason}".rstrip(),
                                      x.is_grpc)
    if x.error is not None:
        detail["error"] = f"{x.error.kind}: {x.error.message}"
    if x.is_grpc:
        detail["grpc"] = _grpc(x, t.request_start)
        if x.grpc_status is not None:
            detail["grpc_status"] = f"{x.grpc_status_name} ({x.grpc_status})" + (
                f": {x.grpc_message}" if x.grpc_message else "")
    if frames:
        detail["ws"] = _frames(frames, t.request_start)
    if x.redacted:
        detail["redacted"] = list(x.redacted)
    if mismatches:
        detail["mismatches"] = [_mismatch(m) for m in mismatches]
    return detail
