"""How two exchanges (or tunnels) differ, place by place, before noise is set aside.

Headers are compared without hop-by-hop ones and those that differ on every run
(Date, ETag, Server-Timing, trace ids…); bodies by what they are (`diff.bodies`); gRPC
calls by status and message field by field. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tapproxy.capture.model import (
    Exchange,
    Headers,
    Request,
    Response,
    Tunnel,
    is_grpc_content_type,
)
from tapproxy.capture.protobuf import ProtoSchema
from tapproxy.diff.bodies import body_view, boundary_masked, form_fields
from tapproxy.diff.messages import message_trees
from tapproxy.diff.model import Change
from tapproxy.diff.structure import json_changes, line_changes
from tapproxy.errors import UsageError

__all__ = ["IGNORED_HEADERS", "LatencyThreshold", "body_changes", "compare_exchanges",
           "compare_tunnels", "grpc_content_type", "header_changes", "ms",
           "parse_latency_threshold"]

# RFC 9110 §7.6.1 hop-by-hop fields, and what a proxy or client adds on its own.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
# Values that change on every run whatever the service does, or that follow from what
# is compared elsewhere (content-length from the body, host from the address).
_VOLATILE = {"date", "expires", "last-modified", "etag", "age", "server-timing",
             "x-request-id", "x-correlation-id", "request-id", "x-trace-id", "traceparent",
             "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid",
             "x-b3-parentspanid", "x-b3-sampled", "x-amzn-trace-id", "x-cloud-trace-context",
             "x-runtime", "x-response-time", "cf-ray", "x-envoy-upstream-service-time",
             "content-length", "host", "cookie", "set-cookie", "grpc-status",
             "grpc-message", "grpc-timeout", "via",
             # RFC 6455 §4.1: a nonce per handshake, and the answer derived from it
             "sec-websocket-key", "sec-websocket-accept"}
IGNORED_HEADERS = frozenset(_HOP_BY_HOP | _VOLATILE)


@dataclass(frozen=True, slots=True)
class LatencyThreshold:
    """A slowdown worth reporting: more than `ns` slower, or more than `ratio` slower
    (0.5: 50 % more than the expected's duration)."""

    ns: int | None = None
    ratio: float | None = None

    def exceeded(self, expected_ns: int, actual_ns: int) -> bool:
        if self.ns is not None:
            return actual_ns - expected_ns > self.ns
        return actual_ns > expected_ns * (1 + (self.ratio or 0.0))


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def parse_latency_threshold(text: str) -> LatencyThreshold:
    """`100ms` (slower by more than that) or `50%` (slower by more than half)."""
    from tapproxy.analysis.budget import parse_duration

    m = _PERCENT.fullmatch(text.strip())
    if m is not None:
        return LatencyThreshold(ratio=float(m.group(1)) / 100)
    try:
        return LatencyThreshold(ns=parse_duration(text, "--latency-threshold"))
    except UsageError:
        raise UsageError(f"bad --latency-threshold {text!r}: expected a duration (100ms, "
                         "1.5s) or a percentage (50%)") from None


def _outcome(x: Exchange) -> tuple[str, object]:
    if x.error is not None:
        return "error", x.error.kind
    return "status", x.status


def compare_exchanges(a: Exchange, b: Exchange, schema: ProtoSchema | None = None,
                      latency: LatencyThreshold | None = None) -> list[Change]:
    """Every place where `b` (actual) differs from `a` (expected), noise included."""
    out: list[Change] = []
    if a.error is not None or b.error is not None:
        ka, kb = (a.error.kind if a.error else None), (b.error.kind if b.error else None)
        if ka != kb:
            out.append(Change("error", "", "changed", ka, kb))
    if a.status != b.status and a.response is not None and b.response is not None:
        out.append(Change("status", "", "changed", a.status, b.status))
    grpc = _is_grpc(a) or _is_grpc(b)
    if grpc and a.response is not None and b.response is not None:
        if a.grpc_status_name != b.grpc_status_name:
            out.append(Change("grpc-status", "", "changed", a.grpc_status_name,
                              b.grpc_status_name))
        elif a.grpc_message != b.grpc_message:
            out.append(Change("grpc-status", "message", "changed", a.grpc_message,
                              b.grpc_message))
    if latency is not None and latency.exceeded(a.timing.duration_ns, b.timing.duration_ns):
        out.append(Change("latency", "", "changed", ms(a.timing.duration_ns),
                          ms(b.timing.duration_ns)))
    if a.request.query != b.request.query:
        out.extend(json_changes(form_fields(a.request.query), form_fields(b.request.query),
                                "request.query"))
    out.extend(header_changes(a.request.headers, b.request.headers, "request.header"))
    if grpc:
        out.extend(_message_changes(a, b, True, schema))
    else:
        out.extend(body_changes(a.request, b.request, "request.body"))
    if a.response is not None and b.response is not None:
        out.extend(header_changes(a.response.headers, b.response.headers, "response.header"))
        if a.response.trailers is not None or b.response.trailers is not None:
            out.extend(header_changes(a.response.trailers or Headers(),
                                      b.response.trailers or Headers(), "response.trailer"))
        if grpc:
            out.extend(_message_changes(a, b, False, schema))
        else:
            out.extend(body_changes(a.response, b.response, "response.body"))
    return out


def _is_grpc(x: Exchange) -> bool:
    """`x.is_grpc` from the raw header bytes: most exchanges' headers are never decoded
    to text otherwise (`Headers.from_raw`), and this runs for every pair."""
    return grpc_content_type(x.request.headers.raw) or (
        x.response is not None and grpc_content_type(x.response.headers.raw))


def grpc_content_type(raw: tuple[tuple[bytes, bytes], ...]) -> bool:
    """Whether raw header fields have a gRPC content-type as their first content-type."""
    for name, value in raw:
        if len(name) == 12 and name.lower() == b"content-type":
            return value[:16].lower() == b"application/grpc" and is_grpc_content_type(
                value.decode("latin-1"))
    return False


def ms(ns: int) -> str:
    """A duration as a latency change shows it."""
    return f"{ns / 1e6:.1f} ms"


def _header_map(h: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in h:
        name = name.lower()
        if name in IGNORED_HEADERS or name.startswith("x-tapproxy-"):
            continue
        if name == "content-type" and "oundary=" in value:
            value = boundary_masked(value)
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def header_changes(a: Headers, b: Headers, part: str) -> Iterator[Change]:
    """Header fields added, removed or changed (names lower-case, repeated ones joined)."""
    if a == b:
        return
    ma, mb = _header_map(a), _header_map(b)
    for name, value in ma.items():
        other = mb.get(name)
        if other is None:
            yield Change(part, name, "removed", value, None)
        elif other != value:
            yield Change(part, name, "changed", value, other)
    for name, value in mb.items():
        if name not in ma:
            yield Change(part, name, "added", None, value)


def _same_bytes(a: Request | Response, b: Request | Response) -> bool:
    return (a.body == b.body and a.body_size == b.body_size
            and a.body_sha256 == b.body_sha256
            and a.headers.get("content-encoding") == b.headers.get("content-encoding"))


def body_changes(a: Request | Response, b: Request | Response, part: str) -> list[Change]:
    """How body `b` differs from `a`: JSON and form fields by pointer, text by line,
    anything else (or a change of kind) as a whole."""
    if _same_bytes(a, b):
        return []
    va, vb = body_view(a), body_view(b)
    if va.kind != vb.kind:
        return [Change(part, "", "changed", _whole(va), _whole(vb))]
    if va.kind in ("json", "form"):
        return list(json_changes(va.value, vb.value, part))
    if va.kind == "text":
        return list(line_changes(va.value, vb.value, part))  # type: ignore[arg-type]
    if va.value != vb.value:
        return [Change(part, "", "changed", va.describe(), vb.describe())]
    return []


def _whole(view) -> object:
    """A body shown whole when its kind changed: a short value as it is."""
    if view.kind == "text" and len(view.value) <= 200:
        return view.value
    if view.kind == "json":
        return view.value
    return view.describe()


def _message_changes(a: Exchange, b: Exchange, from_client: bool,
                     schema: ProtoSchema | None) -> list[Change]:
    part = "request.messages" if from_client else "response.messages"
    ma = [m.data for m in a.grpc_messages if m.from_client == from_client]
    mb = [m.data for m in b.grpc_messages if m.from_client == from_client]
    if ma == mb:
        return []
    return list(json_changes(message_trees(a, from_client, schema),
                             message_trees(b, from_client, schema), part))


def compare_tunnels(a: Tunnel, b: Tunnel) -> list[Change]:
    """Tunnels by why they were relayed, how they ended and the bytes each way."""
    out = []
    ea, eb = (a.error.kind if a.error else None), (b.error.kind if b.error else None)
    if ea != eb:
        out.append(Change("error", "", "changed", ea, eb))
    for path, va, vb in (("reason", a.reason, b.reason),
                         ("bytes_from_client", a.bytes_from_client, b.bytes_from_client),
                         ("bytes_from_server", a.bytes_from_server, b.bytes_from_server)):
        if va != vb:
            out.append(Change("tunnel", path, "changed", va, vb))
    return out
