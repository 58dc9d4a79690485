"""Inferring who called whom, and building the spans of one group of exchanges.

For each exchange, in the order they started:
- a `traceparent` from an instrumented caller is honoured: the callee's SERVER span joins
  that trace under the caller's own client span, which is not synthesized again;
- otherwise the call's CLIENT span is attached to the request its caller was handling
  when the call started (`timing`); with several candidates, to the nearest enclosing one
  with links to the others (`ambiguous`); with none, to the test case's span (`root`);
- the SERVER span hangs under the CLIENT span of the same exchange (`exchange`).
Every synthesized span carries `tapproxy.parent_inference` saying which rule applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tapproxy.capture.frozen import slot_constructor
from tapproxy.capture.model import Exchange, TestCase
from tapproxy.spans.context import parse_traceparent, span_id_for, span_ids_for, trace_id_for
from tapproxy.spans.model import Finding, Span, SpanEvent, SpanLink
from tapproxy.spans.semconv import (
    client_attributes,
    server_attributes,
    server_saw_request,
    span_status,
)

__all__ = ["Candidate", "ParentIndex", "Synthesizer", "choose_parent"]

INFERENCE = "tapproxy.parent_inference"
TEST_SERVICE = "tests"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A request a service was handling: a possible parent of that service's own calls."""

    exchange_id: str
    start: int
    end: int | None  # None while still in flight (live)
    trace_id: int
    span_id: int  # the SERVER span of that request
    had_context: bool  # the request arrived with a traceparent


class Enclosing(Protocol):
    """What parent inference needs of a request a service was handling."""

    @property
    def exchange_id(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int | None: ...


def choose_parent[C: Enclosing](candidates: Iterable[C], at: int) -> tuple[C | None, list[C],
                                                                          str]:
    """(parent, others, how) for a call started at `at` by the candidates' service.

    The nearest enclosing request (latest start) wins; the others become links.
    """
    enclosing = [c for c in candidates if c.start <= at and (c.end is None or at <= c.end)]
    if len(enclosing) < 2:  # most calls: nothing to sort
        return (enclosing[0], [], "timing") if enclosing else (None, [], "root")
    enclosing.sort(key=_start_and_id)
    return enclosing[-1], enclosing[:-1], "ambiguous"


def _start_and_id(c: Enclosing) -> tuple[int, str]:
    return c.start, c.exchange_id


# Spans and candidates are built for every exchange: through their slots (see capture/frozen.py).
_candidate = slot_constructor(Candidate)
_span = slot_constructor(Span)


class ParentIndex[C: Enclosing]:
    """The requests each service was handling, so a new call finds the one it is nested in.

    The one implementation of parent inference over recorded exchanges: spans use it with
    their candidates, `tapproxy.analysis.calltree` with its call nodes. Feed exchanges in
    the order they started: `parent_of` each, then `add` it.
    """

    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self._by_service: dict[str, list[C]] = {}
        # Unnamed callee (its address) → the caller it was inferred to be: its requests
        # are the possible parents of that caller's calls.
        self._aliases = aliases or {}

    def parent_of(self, x: Exchange) -> tuple[C | None, list[C], str]:
        """(parent, other candidates, how): how is `timing`, `ambiguous` or `root`."""
        if x.caller.source == "peer":  # a caller known only by its address is nobody's callee
            return None, [], "root"
        at = x.timing.request_start
        held = self._by_service.get(x.caller.name)
        if held:
            # Calls come in start order: a request that ended before this one started
            # encloses no later call either. Dropping it keeps a long test linear (every
            # call scanned every earlier request of its service: 20,000 calls took 50 s).
            open_ = [c for c in held if c.end is None or at <= c.end]
            if len(open_) < len(held):
                self._by_service[x.caller.name] = held = open_
        return choose_parent(held or (), at)

    def add(self, x: Exchange, item: C) -> None:
        """Make `item` (standing for `x`) a possible parent of its callee's later calls."""
        if server_saw_request(x):  # a request the callee never got is nobody's parent
            name = self._aliases.get(x.callee.name, x.callee.name)
            self._by_service.setdefault(name, []).append(item)


class Synthesizer:
    """Builds spans for groups of exchanges (one test case at a time) of one capture."""

    def __init__(self, salt: str, bodies: bool = False) -> None:
        self._salt = salt
        self._bodies = bodies
        self._last_root: tuple[str | None, tuple[int, int]] = (None, (0, 0))

    def test_root(self, test: str) -> tuple[int, int]:
        """(trace id, span id) of a test case's span."""
        return trace_id_for(self._salt, f"test:{test}"), span_id_for(f"test:{test}", "test")

    def test_span(self, case: TestCase, end_hint: int | None = None) -> Span:
        trace_id, span_id = self.test_root(case.name)
        failed = case.outcome in ("failed", "error")
        attrs: dict[str, object] = {"test.case.name": case.name, INFERENCE: "root"}
        if case.outcome:
            attrs["test.case.result.status"] = "pass" if case.outcome == "passed" else (
                "fail" if failed else case.outcome)
        return Span(trace_id, span_id, None, case.name, "internal", TEST_SERVICE, case.started,
                    case.ended or end_hint or case.started, attrs,
                    "error" if failed else "unset", f"test {case.outcome}" if failed else "")

    def decide(self, exchange_id: str, test: str | None, start: int,
               candidates: Iterable[Candidate]) -> tuple[int, int | None, str, list[Candidate],
                                                         Candidate | None]:
        """(trace id, client span's parent, how, links, parent) for a call that started at
        `start`: made live at request start (to inject a traceparent) and the same later."""
        parent, others, how = choose_parent(candidates, start)
        return self._placed(exchange_id, test, parent, others, how)

    def _placed(self, exchange_id: str, test: str | None, parent: Candidate | None,
                others: list[Candidate], how: str) -> tuple[
            int, int | None, str, list[Candidate], Candidate | None]:
        if parent is not None:
            return parent.trace_id, parent.span_id, how, others, parent
        if test:
            trace_id, test_span = self._test_root(test)
            return trace_id, test_span, "root", [], None
        return trace_id_for(self._salt, exchange_id), None, "root", [], None

    def _test_root(self, test: str) -> tuple[int, int]:
        # The calls of a test that are nested in none of its others all ask for the same.
        if self._last_root[0] != test:
            self._last_root = test, self.test_root(test)
        return self._last_root[1]

    def exchange(self, x: Exchange, candidates: Sequence[Candidate]) -> tuple[
            list[Span], Candidate, list[Finding]]:
        """The spans of one exchange, the candidate it is for its callee's calls, findings."""
        parent, others, how = choose_parent(candidates, x.timing.request_start)
        return self._exchange(x, parent, others, how)

    def _exchange(self, x: Exchange, parent: Candidate | None, others: list[Candidate],
                  how: str) -> tuple[list[Span], Candidate, list[Finding]]:
        """`exchange` for a call whose place (choose_parent's answer) is known."""
        tp = parse_traceparent(x.request.headers.get("traceparent"))
        grpc = x.is_grpc  # once: the attributes and statuses of both spans ask
        client_id, server_id = span_ids_for(x.id)
        injected = tp is not None and tp.parent_id == client_id
        findings: list[Finding] = []
        spans: list[Span] = []
        start, end = x.timing.request_start, x.timing.end
        trace_id, client_parent, how, others, parent = self._placed(x.id, x.test, parent,
                                                                    others, how)

        if tp is not None and not injected:
            # An instrumented caller: its client span exists; the callee joins its trace.
            trace_id, server_parent, server_how = tp.trace_id, tp.parent_id, "header"
            if parent is not None and parent.had_context and parent.trace_id != tp.trace_id:
                findings.append(self._lost(x, parent, "starts another trace"))
        else:
            if injected:
                trace_id = tp.trace_id  # the live decision, which downstream services saw
            events: tuple[SpanEvent, ...] = ()
            if parent is not None and parent.had_context:
                f = self._lost(x, parent, "sends no traceparent" +
                               (" (tapproxy injected one)" if injected else ""))
                findings.append(f)
                events = (SpanEvent("tapproxy.context_lost", start,
                                    {"tapproxy.incoming_exchange_id": parent.exchange_id,
                                     "message": f.message}),)
            name, attrs = client_attributes(x, self._bodies, grpc)
            attrs[INFERENCE] = how
            status, message = span_status(x, "client", grpc)
            links = tuple(SpanLink(o.trace_id, o.span_id, {INFERENCE: "ambiguous candidate"})
                          for o in others) if others else ()
            spans.append(_span(trace_id, client_id, client_parent, name, "client",
                               x.caller.name, start, end, attrs, status, message, events,
                               links, True, x.id, {}, "tapproxy"))
            server_parent, server_how = client_id, "header" if injected else "exchange"

        if server_saw_request(x):
            name, attrs = server_attributes(x, self._bodies, grpc)
            attrs[INFERENCE] = server_how
            status, message = span_status(x, "server", grpc)
            s_start = x.timing.request_end or start
            s_end = x.timing.response_end or x.timing.response_start or end
            spans.append(_span(trace_id, server_id, server_parent, name, "server",
                               x.callee.name, min(s_start, s_end), s_end, attrs, status,
                               message, (), (), True, x.id, {}, "tapproxy"))
        me = _candidate(x.id, start, end, trace_id, server_id, tp is not None)
        return spans, me, findings

    def _lost(self, x: Exchange, parent: Candidate, what: str) -> Finding:
        service = x.caller.name
        return Finding("context_lost", service,
                       f"service {service} drops trace context: it received a traceparent "
                       f"(exchange {parent.exchange_id}) but its call to {x.callee.name} "
                       f"{x.request.method} {x.request.path_only} {what}", x.id, x.test)

    def group(self, exchanges: Iterable[Exchange], case: TestCase | None = None,
              test: str | None = None, test_span: bool = True) -> tuple[list[Span],
                                                                         list[Finding]]:
        """Spans for one test case's exchanges (or for exchanges of no test).

        `test_span` False: the test's own span was already emitted (late exchanges)."""
        ordered = sorted(exchanges, key=lambda x: (x.timing.request_start, x.id))
        index: ParentIndex[Candidate] = ParentIndex()
        spans: list[Span] = []
        findings: list[Finding] = []
        for x in ordered:
            # parent_of's answer is what exchange() would choose among these candidates.
            mine, me, found = self._exchange(x, *index.parent_of(x))
            spans.extend(mine)
            if found:
                findings.extend(found)
            index.add(x, me)
        name = case.name if case else test
        if name is not None and test_span:
            last = max((s.end for s in spans), default=None)
            spans.insert(0, self.test_span(case or TestCase(name, ordered[0].timing.request_start),
                                           last))
        return spans, findings
