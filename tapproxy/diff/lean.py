"""The diff over exchanges as the file holds them (`fastwire.ExchangeWire`): keyed and
compared from their raw fields, the model's record parts built only where those differ.

Reading a capture is mostly building records; a diff of two recordings of one run
needs, of most exchanges, their key and the two response bodies. Each function here
gives exactly what its counterpart over `Exchange` gives (`align_key`,
`compare_exchanges`, `request_key`); anything but the common shape (an error, gRPC) is
handed to that counterpart whole.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from tapproxy.capture.encoding import parse_json
from tapproxy.capture.fastwire import (
    ExchangeWire,
    exchange_of,
    request_of,
    response_of,
)
from tapproxy.capture.model import Headers, Record, Response
from tapproxy.capture.routes import RouteTable
from tapproxy.diff.bodies import form_fields
from tapproxy.diff.compare import (
    LatencyThreshold,
    body_changes,
    compare_exchanges,
    grpc_content_type,
    header_changes,
    ms,
)
from tapproxy.diff.model import Change
from tapproxy.diff.structure import json_changes
from tapproxy.noise import body_digest, path_template
from tapproxy.report.parties import callee_name, party_name

__all__ = ["compare_wires", "json_identity", "wire_key", "wire_outcome", "wire_request_key",
           "wire_response", "wire_route"]

_EMPTY = Headers()


def wire_route(w: ExchangeWire, routes: Callable[[Record], Record] | None) -> str | None:
    """The exchange's route template once `routes` (diff's --route) has set it."""
    if w.route is not None or routes is None:
        return w.route
    if isinstance(routes, RouteTable):
        return routes.route_of(w.callee.name, w.request.path)
    return routes(exchange_of(w)).route  # type: ignore[union-attr]


# The last few thousand kept (health checks, the same POST in every test: most paths
# come again); lru_cache's lookup is C, as cheap as a dict's.
_template = functools.lru_cache(maxsize=4096)(path_template)


def wire_key(w: ExchangeWire, route: str | None) -> tuple:
    """`align_key(x).astuple()` of the exchange, its route being `route`."""
    q = w.request
    return (w.test, party_name(w.caller), callee_name(w.callee),  # type: ignore[arg-type]
            q.method, route or _template(q.path))


_DIGESTS: dict[tuple, str] = {}
_DIGEST_BODY = 4096  # bodies up to this size have their digest kept, by their bytes


def wire_request_key(w: ExchangeWire) -> tuple:
    """`request_key(exchange_of(w))`: a request body's digest (JSON parsed and
    re-serialized) is kept for bodies sent again and again (the same POST in every
    test)."""
    q = w.request
    if q.body_size is not None:  # kept in part: the whole body's hash, as body_digest
        digest = "sha256:" + q.body_sha256.hex()  # type: ignore[union-attr]
    elif not q.body:
        digest = ""
    else:
        memo = (q.body, q.headers)  # the headers say how the body is encoded and typed
        digest = _DIGESTS.get(memo)  # type: ignore[assignment]
        if digest is None:
            digest = body_digest(request_of(q))
            if len(q.body) <= _DIGEST_BODY:
                if len(_DIGESTS) >= 1024:
                    _DIGESTS.clear()
                _DIGESTS[memo] = digest
    return (w.caller.name, w.callee.name, q.method, q.path, digest)


_BUILT: dict[int, tuple[object, Response]] = {}


def wire_response(r) -> Response:
    """`response_of(r)`, the last few kept: an answer learned from is then compared with
    the same Response, whose headers were looked up once."""
    found = _BUILT.get(id(r))
    if found is not None and found[0] is r:  # the same object, kept alive by the entry
        return found[1]
    built = response_of(r)
    if len(_BUILT) >= 32:
        with contextlib.suppress(KeyError, StopIteration, RuntimeError):
            del _BUILT[next(iter(_BUILT))]  # the oldest
    _BUILT[id(r)] = (r, built)
    return built


# Asked of every exchange several times; most answers of a service have the same
# headers: the last few header sets kept.
_grpc = functools.lru_cache(maxsize=256)(grpc_content_type)


def _duration(t) -> int:
    """`timing_of(t).duration_ns` without building the Timing (`Timing.end`)."""
    end = t.response_end
    if end is None:
        end = t.error_at
        if end is None:
            end = t.response_start
            if end is None:
                end = t.request_end
                if end is None:
                    end = t.request_start
    return max(0, end - t.request_start)


def _same_raw(a, b) -> bool:
    """Bodies equal byte for byte, with the same headers (so the same content-encoding)."""
    return (a.body == b.body and a.body_size == b.body_size
            and a.body_sha256 == b.body_sha256 and a.headers == b.headers)


def compare_wires(a: ExchangeWire, b: ExchangeWire, schema=None,
                  latency: LatencyThreshold | None = None) -> list[Change]:
    """`compare_exchanges(exchange_of(a), exchange_of(b), schema, latency)`."""
    ra, rb, qa, qb = a.response, b.response, a.request, b.request
    if (a.error is not None or b.error is not None or ra is None or rb is None
            or _grpc(qa.headers) or _grpc(ra.headers)
            or _grpc(qb.headers) or _grpc(rb.headers)):
        return compare_exchanges(exchange_of(a), exchange_of(b), schema, latency)
    # In compare_exchanges' order: status, latency, query, request headers and body,
    # response headers, trailers and body.
    out: list[Change] = []
    if ra.status != rb.status:
        out.append(Change("status", "", "changed", ra.status, rb.status))
    if latency is not None:
        da, db = _duration(a.timing), _duration(b.timing)
        if latency.exceeded(da, db):
            out.append(Change("latency", "", "changed", ms(da), ms(db)))
    query_a, query_b = qa.path.partition("?")[2], qb.path.partition("?")[2]
    if query_a != query_b:
        out.extend(json_changes(form_fields(query_a), form_fields(query_b), "request.query"))
    if qa.headers != qb.headers:
        out.extend(header_changes(Headers.from_raw(qa.headers), Headers.from_raw(qb.headers),
                                  "request.header"))
    if not _same_raw(qa, qb):
        out.extend(body_changes(request_of(qa), request_of(qb), "request.body"))
    if ra.headers != rb.headers:
        out.extend(header_changes(Headers.from_raw(ra.headers), Headers.from_raw(rb.headers),
                                  "response.header"))
    if ra.trailers is not None or rb.trailers is not None:
        out.extend(header_changes(
            _EMPTY if ra.trailers is None else Headers.from_raw(ra.trailers),
            _EMPTY if rb.trailers is None else Headers.from_raw(rb.trailers),
            "response.trailer"))
    if not _same_raw(ra, rb):
        changes = _json_body_changes(ra, rb)
        if changes is None:
            changes = body_changes(wire_response(ra), wire_response(rb), "response.body")
        out.extend(changes)
    return out


_IS_JSON: dict[tuple, bool] = {}


def json_identity(raw: tuple[tuple[bytes, bytes], ...]) -> bool:
    """Whether raw header fields declare a JSON body (application/json, +json) with no
    content-encoding; the last few answers kept (most answers of a service have the
    same headers)."""
    is_json = _IS_JSON.get(raw)
    if is_json is None:
        h = Headers.from_raw(raw)
        ctype = (h.get("content-type") or "").split(";")[0].strip().lower()
        is_json = h.get("content-encoding") is None and (
            ctype == "application/json" or ctype.endswith("+json"))
        if len(_IS_JSON) >= 64:
            _IS_JSON.clear()
        _IS_JSON[raw] = is_json
    return is_json


def _json_body_changes(ra, rb) -> list[Change] | None:
    """`body_changes` of two JSON bodies with the same headers, neither encoded nor kept
    in part (what body_view would parse as JSON), without building either Response; None
    for any other two."""
    if ra.headers != rb.headers or ra.body_size is not None or rb.body_size is not None \
            or not ra.body or not rb.body:
        return None
    if not json_identity(ra.headers):
        return None
    try:
        va, vb = parse_json(ra.body), parse_json(rb.body)
    except ValueError:
        return None  # declared JSON but is not: body_view tells what it is
    return json_changes(va, vb, "response.body")


def wire_outcome(w: ExchangeWire) -> tuple[str, int] | None:
    """(outcome, duration) as `side_of` shows them, or None where it must see the
    record (an error, gRPC)."""
    r = w.response
    if w.error is not None or _grpc(w.request.headers) or (
            r is not None and _grpc(r.headers)):
        return None
    return str(None if r is None else r.status), _duration(w.timing)
