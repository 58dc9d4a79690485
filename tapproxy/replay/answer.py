"""A recorded response as it is sent again: status, headers, body pieces, timing.

Shared by every listener (aiohttp, HTTP/2, the forward proxy's addon). Hop-by-hop
headers are the new connection's business and are left out, as is Content-Length (the
server sets it from the body); bodies keep their recorded content-encoding. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from tapproxy.capture.model import Exchange

__all__ = ["Answer", "answer_for", "failure_answer", "grpc_failure", "pieces"]

_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                  "upgrade", "proxy-connection", "proxy-authenticate", "content-length"})
_CHUNK = 16 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    trailers: tuple[tuple[str, str], ...] | None = None
    streamed: bool = False  # sent in pieces as the recording received it (SSE, chunked)
    wait_ns: int = 0  # from the request's end to the response's start, as recorded
    spread_ns: int = 0  # from the response's start to its end, as recorded


def answer_for(x: Exchange) -> Answer:
    """The recorded response of `x` (a recorded transport error: a 502 saying so)."""
    r = x.response
    if r is None:
        what = x.error.kind if x.error else "no response"
        message = f": {x.error.message}" if x.error and x.error.message else ""
        return failure_answer(502, f"tapproxy replay: the recorded exchange {x.id} got "
                              f"no response ({what}{message})", "recorded-error")
    t = x.timing
    wait = spread = 0
    if t.response_start is not None:
        wait = max(0, t.response_start - (t.request_end or t.request_start))
        if t.response_end is not None:
            spread = max(0, t.response_end - t.response_start)
    headers = tuple((k, v) for k, v in r.headers.fields if k.lower() not in _HOP)
    streamed = x.streamed or r.content_type == "text/event-stream" \
        or (r.http_version.startswith("HTTP/1") and "content-length" not in r.headers
            and "chunked" in (r.headers.get("transfer-encoding") or "").lower())
    return Answer(r.status, r.reason, headers, r.body,
                  None if r.trailers is None else r.trailers.fields, streamed, wait, spread)


def failure_answer(status: int, text: str, why: str = "miss") -> Answer:
    """tapproxy's own answer, plain text; `why` (its x-tapproxy-replay header): `miss`,
    `cut` (a body kept only in part), `recorded-error`, `error` (tapproxy's own)."""
    return Answer(status, "Bad Gateway" if status == 502 else "", (
        ("content-type", "text/plain; charset=utf-8"), ("x-tapproxy-replay", why)),
        (text.rstrip("\n") + "\n").encode())


def grpc_failure(answer: Answer) -> Answer:
    """tapproxy's own answer to a gRPC call, as a gRPC client reads one: grpc-status
    UNKNOWN with the text's first line as grpc-message (a client shows that, not a body)."""
    first = answer.body.decode("utf-8", "replace").splitlines()[0]
    return Answer(200, "OK", (("content-type", "application/grpc"),
                              ("grpc-status", "2"),
                              ("grpc-message", quote(first, safe=" /:#,()'\"=@"))), b"")


def pieces(answer: Answer) -> list[bytes]:
    """The body in the pieces a streamed answer is sent in: server-sent events one by
    one (each with its blank line), other bodies in 16 KiB chunks."""
    body = answer.body
    if not body:
        return []
    ctype = dict((k.lower(), v) for k, v in answer.headers).get("content-type", "")
    if ctype.split(";")[0].strip().lower() == "text/event-stream":
        out, start = [], 0
        while (end := body.find(b"\n\n", start)) != -1:
            out.append(body[start:end + 2])
            start = end + 2
        if start < len(body):
            out.append(body[start:])
        return out
    return [body[i:i + _CHUNK] for i in range(0, len(body), _CHUNK)]
