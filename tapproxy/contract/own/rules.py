"""The checks behind an expectation file: one exchange against an interaction, a test's
calls against its `tests:` entry, the capture against each interaction's count.

Each finding is a `Mismatch` naming the exchange, the test, the place in the payload
(JSON pointer, `header NAME`, `query NAME`) and the matcher's line in the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from tapproxy.analysis.budget import Budget
from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import GRPC_STATUS_NAMES, Exchange, Request, Response
from tapproxy.capture.select import test_matches
from tapproxy.contract.excerpt import payload_excerpt
from tapproxy.contract.model import Hit, Location, Mismatch
from tapproxy.contract.own.matchers import ABSENT, Failure, Matcher
from tapproxy.errors import CaptureError

if TYPE_CHECKING:
    from tapproxy.contract.own.format import Interaction

__all__ = ["Counted", "TestSpec", "exchange_mismatches", "run_mismatches",
           "test_mismatches", "unexpected"]


@dataclass(frozen=True, slots=True)
class Counted:
    """How many calls are expected: at least `least`, at most `most` (None: no limit)."""

    least: int
    most: int | None
    location: Location
    default: bool = False  # not written in the file: "at least once"

    def accepts(self, n: int) -> bool:
        return n >= self.least and (self.most is None or n <= self.most)

    @property
    def text(self) -> str:
        if self.most is None:
            return "any number" if self.least == 0 else f"at least {self.least}"
        if self.least == self.most:
            return f"exactly {self.least}"
        return f"at most {self.most}" if self.least == 0 else f"{self.least} to {self.most}"


@dataclass(frozen=True, slots=True)
class TestSpec:
    """A `tests:` entry: the calls of the tests its pattern names."""

    __test__ = False  # not a pytest class

    pattern: str
    sequence: tuple[tuple[str, Location], ...]  # interaction id, where the file names it
    counts: tuple[tuple[str, Counted], ...]
    location: Location

    def applies_to(self, test: str | None) -> bool:
        return test_matches(self.pattern, test)


# --- payloads ----------------------------------------------------------------------------

_SKIP = object()  # a body kept only in part: nothing can be said of the rest


def _body(msg: Request | Response) -> tuple[object, str | None]:
    """(parsed body, problem): JSON when it parses as JSON, else text; ABSENT if empty."""
    if msg.body_truncated:
        return _SKIP, None
    try:
        raw = decoded_body(msg)
    except CaptureError as e:
        return None, str(e)
    if not raw:
        return ABSENT, None
    ctype = msg.content_type
    if "json" in ctype or not ctype or raw[:1] in b"{[":
        try:
            return json.loads(raw), None
        except ValueError:
            pass
    return raw.decode("utf-8", "replace"), None


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms" if ns < 10_000_000 else f"{ns / 1e6:.0f} ms"


class _Found:
    """Mismatches of one exchange against one interaction, as they are found."""

    def __init__(self, interaction: Interaction, x: Exchange,
                 bodies: dict[str, tuple[object, str | None]]) -> None:
        self.i, self.x = interaction, x
        self.out: list[Mismatch] = []
        self.bodies = bodies  # parsed once per exchange, whichever interactions judge it

    def add(self, kind: str, side: str, what: str, where: str, expected: str, actual: str,
            location: Location, excerpt: str = "") -> None:
        x = self.x
        self.out.append(Mismatch(
            kind=kind, message=f"{side} {what}: expected {expected}, got {actual}".strip(),
            contract=location, item=self.i.item.id, where=where, side=side,
            expected=expected, actual=actual, exchange_id=x.id, test=x.test,
            caller=x.caller.name, callee=x.callee.name, excerpt=excerpt))

    def failures(self, side: str, failures: list[Failure], body: object) -> None:
        for f in failures:
            what = f"body {f.where}" if f.where else "body"
            excerpt = "" if body is ABSENT else payload_excerpt(body, f.where)
            self.add(f.kind, side, what, f.where, f.expected, f.actual, f.location, excerpt)

    def headers(self, side: str, headers, matchers: dict[str, tuple[str, Matcher]]) -> None:
        for lname, (name, m) in matchers.items():
            values = headers.get_all(lname)
            value = ", ".join(values) if values else ABSENT
            found: list[Failure] = []
            m.check(value, "", found)
            shown = f"{name}: {value}" if values else f"(no {name} header)"
            for f in found:
                self.add("header", side, f"header {name}", f"header {lname}", f.expected,
                         f.actual, f.location, shown)

    def body(self, side: str, msg: Request | Response, matcher: Matcher | None) -> None:
        if matcher is None:
            return
        if side not in self.bodies:
            self.bodies[side] = _body(msg)
        value, problem = self.bodies[side]
        if value is _SKIP:
            return  # only its first bytes were kept (--max-body): no verdict on the rest
        if problem is not None:
            self.add("body-type", side, "body", "", "a decodable body", problem,
                     matcher.location)
            return
        found: list[Failure] = []
        matcher.check(value, "", found)
        self.failures(side, found, value)


def _query(request: Request) -> dict[str, object]:
    return {k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(request.query, keep_blank_values=True).items()}


def _request(found: _Found) -> None:
    i, x = found.i, found.x
    if i.params:
        values = i.route.match(x.request.path) or {}
        for name, m in i.params.items():
            broken: list[Failure] = []
            m.check(values.get(name, ABSENT), "", broken)
            for f in broken:
                found.add(f.kind, "request", f"path {{{name}}}", f"path {name}", f.expected,
                          f.actual, f.location, x.request.path_only[:72])
    if i.query:
        query = _query(x.request)
        for name, m in i.query.items():
            failures: list[Failure] = []
            m.check(query.get(name, ABSENT), "", failures)
            for f in failures:
                shown = f"?{x.request.query}" if x.request.query else "(no query)"
                found.add(f.kind, "request", f"query {name}", f"query {name}", f.expected,
                          f.actual, f.location, shown[:72])
    found.headers("request", x.request.headers, i.request_headers)
    found.body("request", x.request, i.request_body)


def _status_excerpt(r: Response) -> str:
    value, _ = _body(r)
    if value is ABSENT or value is _SKIP or value is None:
        return f"HTTP {r.status} {r.reason}".strip()
    return payload_excerpt(value, "")


def _response(found: _Found) -> None:
    i, x = found.i, found.x
    r = x.response
    expects = (i.status or i.response_headers or i.response_body is not None
               or i.grpc_status)
    if r is None:
        if expects:
            got = f"no response ({x.error.kind})" if x.error else "no response"
            where = i.status.location if i.status else i.item.location
            found.add("status", "response", "status", "status",
                      i.status.text if i.status else "a response", got, where,
                      x.error.message if x.error else "")
        return
    if i.status is not None and not i.status.accepts(r.status):
        found.add("status", "response", "status", "status", i.status.text, str(r.status),
                  i.status.location, _status_excerpt(r))
        return  # the headers and body described are those of the status expected
    found.headers("response", r.headers, i.response_headers)
    found.body("response", r, i.response_body)
    if i.grpc_status is not None:
        code = x.grpc_status
        if code is None or code not in i.grpc_status.codes:
            actual = "none" if code is None else (
                GRPC_STATUS_NAMES[code] if code < len(GRPC_STATUS_NAMES) else str(code))
            found.add("grpc-status", "response", "grpc-status", "grpc-status",
                      i.grpc_status.text, actual, i.grpc_status.location,
                      x.grpc_message or "")


def _documents_4xx(i: Interaction, x: Exchange) -> bool:
    """The file says this interaction may answer the 4xx it did: a request the service
    rightly refused is a negative test, not a broken request."""
    status = x.status
    return (status is not None and 400 <= status < 500 and i.status is not None
            and i.status.accepts(status))


def exchange_mismatches(i: Interaction, x: Exchange, budget: Budget | None,
                        bodies: dict | None = None) -> list[Mismatch]:
    """Every way `x` breaks interaction `i` (request checks skipped on a documented 4xx);
    `bodies` keeps the parsed bodies between the interactions tried on one exchange."""
    found = _Found(i, x, {} if bodies is None else bodies)
    if not _documents_4xx(i, x):
        _request(found)
    _response(found)
    limit = i.budget_ns if i.budget_ns is not None else (
        budget.limit_ns(x) if budget else None)
    if limit is not None and x.timing.duration_ns > limit:
        found.add("latency", "", "latency", "", f"≤ {_ms(limit)}",
                  _ms(x.timing.duration_ns), i.budget_at or i.item.location)
    return found.out


def unexpected(x: Exchange, location: Location) -> Mismatch:
    """A call to the file's service that no interaction describes."""
    call = f"{x.request.method} {x.request.path_only}"
    value, _ = _body(x.request)
    excerpt = call if value in (ABSENT, _SKIP, None) else \
        f"{call}\n{payload_excerpt(value, '')}"
    return Mismatch("unexpected-interaction",
                    f"{call}: no interaction of this contract matches", location,
                    None, "", "request", "an interaction of this file", call, x.id, x.test,
                    x.caller.name, x.callee.name, excerpt)


# --- whole tests, whole captures ---------------------------------------------------------


def _whole(kind: str, message: str, location: Location, item: str | None, test: str | None,
           expected: str, actual: str, exchange_id: str | None = None,
           caller: str | None = None, callee: str | None = None) -> Mismatch:
    return Mismatch(kind, message, location, item, "", "", expected, actual, exchange_id,
                    test, caller, callee)


def test_mismatches(spec: TestSpec, test: str | None, hits: Sequence[Hit],
                    interactions: Mapping[str, Interaction]) -> list[Mismatch]:
    """Sequence and counts of one test's calls (`hits`, in time order)."""
    by_item: dict[str, list[Hit]] = {}
    for h in hits:
        by_item.setdefault(h.item, []).append(h)
    out: list[Mismatch] = []

    def edge(name: str) -> tuple[str | None, str | None]:
        item = interactions[name].item
        return item.caller, item.callee

    for name, location in spec.sequence:
        if name not in by_item:
            out.append(_whole("missing-interaction", f"{name}: never called in this test",
                              location, name, test, "called", "never", None, *edge(name)))
    present = [(n, loc) for n, loc in spec.sequence if n in by_item]
    k = 0
    for h in hits:
        if k < len(present) and h.item == present[k][0]:
            k += 1
    if k < len(present):
        name, location = present[k]
        firsts = sorted({n for n, _ in present}, key=lambda n: by_item[n][0].start)
        first = by_item[name][0]
        out.append(_whole("order", f"{name} came before {present[k - 1][0]}", location,
                          name, test, " → ".join(n for n, _ in present), " → ".join(firsts),
                          first.exchange_id, first.caller, first.callee))
    for name, counted in spec.counts:
        made = by_item.get(name, [])
        if counted.accepts(len(made)):
            continue
        if not made:
            out.append(_whole("missing-interaction", f"{name}: never called in this test",
                              counted.location, name, test, counted.text, "never", None,
                              *edge(name)))
            continue
        over = made[counted.most] if counted.most is not None and \
            len(made) > counted.most else None
        out.append(_whole("count", f"{name}: {len(made)} calls in this test, expected "
                          f"{counted.text}", counted.location, name, test, counted.text,
                          f"{len(made)} calls", over.exchange_id if over else None,
                          *edge(name)))
    return out


def run_mismatches(interactions: Sequence[Interaction], counts: Mapping[str, int],
                   unseen_tests: Sequence[TestSpec]) -> list[Mismatch]:
    """Interactions called too rarely or too often in the whole capture, and `tests:`
    entries no test of the capture matched."""
    out: list[Mismatch] = []
    for i in interactions:
        n = counts.get(i.item.id, 0)
        if i.count.accepts(n):
            continue
        if n == 0:
            out.append(_whole("missing-interaction", f"{i.item.label}: never called",
                              i.count.location, i.item.id, None, i.count.text, "never",
                              None, i.item.caller, i.item.callee))
        else:
            out.append(_whole("count", f"{i.item.label}: {n} calls, expected "
                              f"{i.count.text}", i.count.location, i.item.id, None,
                              i.count.text, f"{n} calls", None, i.item.caller,
                              i.item.callee))
    for spec in unseen_tests:
        out.append(_whole("missing-interaction",
                          f"no test of this capture matches {spec.pattern!r}",
                          spec.location, None, None, f"a test {spec.pattern}", "none"))
    return out
