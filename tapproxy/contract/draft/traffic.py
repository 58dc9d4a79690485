"""What a contract draft is drafted from: a capture's calls grouped into operations.

An operation is (caller, callee, method, path template); numeric, UUID and token path
segments become parameters named after the segment before them (`/orders/{orderId}`).
Per operation and status a bounded number of samples is kept (bodies as JSON values,
query and path parameters), and the noise model is learned in the same pass, so each
draft kind (own format, OpenAPI, Pact) renders from the same reading of the traffic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import Exchange, Request, Response
from tapproxy.errors import CaptureError, ContractError
from tapproxy.noise import NoiseModel, RouteKey, path_template

__all__ = ["ABSENT", "Operation", "Sample", "Traffic", "gather", "named_template"]

_TEXTUAL = ("text/", "application/xml", "application/x-www-form-urlencoded")
#: Samples kept per operation and status: enough to tell constants from data.
MAX_SAMPLES = 50
#: Body bytes kept per operation and status past the first sample: a draft of a capture
#: with large bodies stays within memory.
MAX_SAMPLE_BYTES = 4 << 20


class _Absent:
    """No body at all (an empty body), as opposed to a JSON `null`."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded call of an operation, reduced to what a draft needs."""

    path: str  # the concrete path, query aside
    params: dict[str, str]  # path parameter values by name
    query: dict[str, list[str]]
    request_body: object  # a JSON value, text (str), or ABSENT
    request_type: str  # content type without parameters, lower case; "" when none
    response_body: object
    response_type: str
    response_type_header: str  # the Content-Type header as sent, "" when none


@dataclass
class Operation:
    """The calls of one caller to one callee's method and path template."""

    caller: str
    callee: str
    method: str
    template: str  # /orders/{orderId}
    route_key: RouteKey  # what the noise model learned its noise under
    responses: dict[int, list[Sample]] = field(default_factory=dict)  # status → samples
    calls: int = 0

    @property
    def params(self) -> list[str]:
        return [s[1:-1] for s in self.template.split("/") if s[:1] == "{" and s[-1:] == "}"]


@dataclass(frozen=True, slots=True)
class Traffic:
    """The operations in the order first called, and the noise they showed."""

    operations: list[Operation]
    noise: NoiseModel
    exchanges: int  # the HTTP exchanges drafted from

    def callees(self) -> list[str]:
        return sorted({op.callee for op in self.operations})


def _camel(word: str) -> str:
    parts = [p for p in word.replace("-", "_").split("_") if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) if parts else ""


def _param_name(before: str | None) -> str:
    """`orders` → `orderId`; `id` when the segment before is no plain word."""
    if before is None or not before or before.startswith("{") or not before.isascii():
        return "id"
    word = _camel(before)
    if not word.isidentifier():
        return "id"
    if word.endswith("ies") and len(word) > 3:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        word = word[:-1]
    return word + "Id"


def named_template(path: str) -> str:
    """`/orders/42/items/7` → `/orders/{orderId}/items/{itemId}`: the noise model's path
    template with each `{id}` named after the segment before it (`{id}`, `{id2}` where
    that names nothing or would name two parameters alike)."""
    segments = path_template(path).split("/")
    names: list[str] = []
    for i, s in enumerate(segments):
        if s != "{id}":
            continue
        name = _param_name(segments[i - 1] if i > 0 else None)
        base, n = name, 2
        while name in names:
            name, n = f"{base}{n}", n + 1
        names.append(name)
        segments[i] = "{" + name + "}"
    return "/".join(segments)


def _body(msg: Request | Response) -> tuple[object, str]:
    """The body as JSON when it reads as JSON, else as text; ABSENT when empty."""
    ctype = msg.content_type
    if not msg.body:
        return ABSENT, ctype
    try:
        raw = decoded_body(msg)
    except CaptureError:
        return ABSENT, ctype
    if "json" in ctype or (not ctype and raw[:1] in (b"{", b"[")):
        try:
            return json.loads(raw), ctype
        except ValueError:
            pass
    if ctype and not ctype.startswith(_TEXTUAL):
        return ABSENT, ctype  # an image or archive: its bytes are no contract's business
    return raw.decode("utf-8", "replace"), ctype


def _query(path: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(path.partition("?")[2], keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def _draftable(x: object) -> bool:
    # gRPC calls have their own contract (a descriptor set); a WebSocket handshake or a
    # call without an answer says nothing of what the service answers.
    return (isinstance(x, Exchange) and x.response is not None and x.error is None
            and not x.is_grpc and not x.websocket)


class _Gatherer:
    def __init__(self, max_samples: int) -> None:
        self.max = max_samples
        self.ops: dict[tuple[str, str, str, str], Operation] = {}
        self.kept: dict[tuple[int, int], int] = {}  # (id of op, status) → body bytes
        self.exchanges = 0

    def add(self, x: Exchange) -> None:
        r, resp = x.request, x.response
        assert resp is not None
        self.exchanges += 1
        template = x.route or named_template(r.path)
        key = (x.caller.name, x.callee.name, r.method.upper(), template)
        op = self.ops.get(key)
        if op is None:
            op = self.ops[key] = Operation(
                *key, route_key=(x.callee.name, r.method, x.route or path_template(r.path)))
        op.calls += 1
        samples = op.responses.setdefault(resp.status, [])
        if len(samples) >= self.max or r.body_truncated or resp.body_truncated:
            return
        size = len(r.body) + len(resp.body)
        kept = self.kept.get((id(op), resp.status), 0)
        if samples and kept + size > MAX_SAMPLE_BYTES:
            return
        self.kept[(id(op), resp.status)] = kept + size
        values = _template_values(template, r.path_only)
        req_body, req_type = _body(r)
        resp_body, resp_type = _body(resp)
        samples.append(Sample(r.path_only, values, _query(r.path), req_body, req_type,
                              resp_body, resp_type, resp.headers.get("content-type") or ""))

    def feed(self, records: Iterable[object]) -> Iterator[Exchange]:
        for x in records:
            if _draftable(x):
                self.add(x)  # type: ignore[arg-type]
                yield x  # type: ignore[misc]


def _template_values(template: str, path: str) -> dict[str, str]:
    out = {}
    for t, s in zip(template.split("/"), path.split("/"), strict=False):
        if t[:1] == "{" and t[-1:] == "}":
            out[t[1:-1]] = s
    return out


def gather(records: Iterable[object], *, max_samples: int = MAX_SAMPLES) -> Traffic:
    """Operations and noise from capture records, in one pass (records other than answered
    HTTP exchanges are skipped); ContractError when there is nothing to draft from."""
    g = _Gatherer(max_samples)
    noise = NoiseModel.learn(g.feed(records))
    if not g.exchanges:
        raise ContractError("no answered HTTP exchanges to draft a contract from")
    return Traffic(list(g.ops.values()), noise, g.exchanges)
