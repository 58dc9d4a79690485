"""Who called whom: the span tree synthesized from one test's exchanges.

Exchanges are made by hand with chosen timings (ms offsets from T0; see build.py), and
the expected tree is written out in full: parents, trace ids, inference labels, names,
kinds, services and times.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.capture import ErrorInfo, TestCase
from tapproxy.spans.context import format_traceparent, span_id_for, trace_id_for
from tapproxy.spans.infer import INFERENCE, Candidate, ParentIndex, Synthesizer, choose_parent
from tapproxy.spans.model import Finding, Span, SpanEvent, SpanLink
from tests.spans.build import MS, T0, exchange

SALT = "capture-created-1"
TEST = "tests/test_shop.py::test_checkout"

# An instrumented caller's own trace and client span, as its traceparent names them.
OTHER_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
INSTRUMENTED_PARENT = 0xB7AD6B7169203331


def client(xid: str) -> int:
    return span_id_for(xid, "client")


def server(xid: str) -> int:
    return span_id_for(xid, "server")


def shape(spans: list[Span]) -> list[tuple]:
    """What the tree is made of, span by span, with times relative to T0 in ms."""
    return [(s.name, s.kind, s.service, s.span_id, s.parent_span_id,
             s.attributes.get(INFERENCE), (s.start - T0) / MS, (s.end - T0) / MS)
            for s in spans]


@pytest.fixture
def synth() -> Synthesizer:
    return Synthesizer(SALT)


def chain(test: str | None = TEST, **headers) -> list:
    """tests → A /a [0,100]; A → B /b [10,60]; B → C /c [20,40]; A → D /d [70,90]."""
    h = {k: [("traceparent", v)] for k, v in headers.items()}
    return [
        exchange("t1", "tests", "A", 0, 100, path="/a", test=test, headers=h.get("t1", ())),
        exchange("a1", "A", "B", 10, 60, method="POST", path="/b", test=test, status=201,
                 headers=h.get("a1", ())),
        exchange("b1", "B", "C", 20, 40, path="/c?id=7", test=test, route="/c",
                 headers=h.get("b1", ())),
        exchange("a2", "A", "D", 70, 90, method="DELETE", path="/d", test=test, status=204,
                 headers=h.get("a2", ())),
    ]


def test_chain_of_uninstrumented_services(synth: Synthesizer) -> None:
    xs = chain()
    random.Random(7).shuffle(xs)  # the file holds them in completion order, not start order
    case = TestCase(TEST, T0 - 5 * MS, T0 + 120 * MS, "passed")
    spans, findings = synth.group(xs, case)
    trace, test_span = synth.test_root(TEST)
    assert (trace, test_span) == (trace_id_for(SALT, f"test:{TEST}"),
                                  span_id_for(f"test:{TEST}", "test"))
    assert findings == []
    assert {s.trace_id for s in spans} == {trace}
    assert shape(spans) == [
        (TEST, "internal", "tests", test_span, None, "root", -5, 120),
        ("GET", "client", "tests", client("t1"), test_span, "root", 0, 100),
        ("GET", "server", "A", server("t1"), client("t1"), "exchange", 1, 100),
        ("POST", "client", "A", client("a1"), server("t1"), "timing", 10, 60),
        ("POST", "server", "B", server("a1"), client("a1"), "exchange", 11, 60),
        ("GET", "client", "B", client("b1"), server("a1"), "timing", 20, 40),
        ("GET /c", "server", "C", server("b1"), client("b1"), "exchange", 21, 40),
        ("DELETE", "client", "A", client("a2"), server("t1"), "timing", 70, 90),
        ("DELETE", "server", "D", server("a2"), client("a2"), "exchange", 71, 90),
    ]
    assert all(s.synthesized and s.scope == "tapproxy" for s in spans)
    assert [s.exchange_id for s in spans] == [None] + [x for x in ("t1", "a1", "b1", "a2")
                                                       for _ in (0, 1)]
    assert all(s.status == "unset" and not s.links and not s.events for s in spans)


def test_the_same_capture_gives_the_same_spans(synth: Synthesizer) -> None:
    case = TestCase(TEST, T0, T0 + 120 * MS, "passed")
    again = Synthesizer(SALT).group(list(reversed(chain())), case)
    assert synth.group(chain(), case) == again
    other = Synthesizer("another-capture").group(chain(), case)[0]
    assert {s.trace_id for s in other} != {s.trace_id for s in again[0]}
    assert [s.span_id for s in other] == [s.span_id for s in again[0]]


def test_test_span(synth: Synthesizer) -> None:
    failed = synth.test_span(TestCase(TEST, T0, T0 + 9, "failed"))
    assert (failed.name, failed.kind, failed.service, failed.parent_span_id) == (
        TEST, "internal", "tests", None)
    assert (failed.start, failed.end) == (T0, T0 + 9)
    assert failed.status == "error"
    assert failed.attributes == {"test.case.name": TEST, "test.case.result.status": "fail",
                                 INFERENCE: "root"}
    passed = synth.test_span(TestCase(TEST, T0, T0 + 9, "passed"))
    assert passed.status == "unset"
    assert passed.attributes["test.case.result.status"] == "pass"
    assert synth.test_span(TestCase(TEST, T0, T0 + 9, "error")).status == "error"
    skipped = synth.test_span(TestCase(TEST, T0, T0 + 9, "skipped"))
    assert (skipped.status, skipped.attributes["test.case.result.status"]) == ("unset",
                                                                               "skipped")
    still_open = synth.test_span(TestCase(TEST, T0), end_hint=T0 + 50)
    assert "test.case.result.status" not in still_open.attributes
    assert still_open.end == T0 + 50


def test_a_test_never_closed_ends_with_its_last_span(synth: Synthesizer) -> None:
    spans, _ = synth.group(chain(), None, test=TEST)
    assert (spans[0].name, spans[0].start, spans[0].end) == (TEST, T0, T0 + 100 * MS)
    assert spans[0].parent_span_id is None


def test_failures_show_in_the_status_of_their_spans(synth: Synthesizer) -> None:
    xs = [exchange("t1", "tests", "A", 0, 100, test=TEST, status=500),
          exchange("a1", "A", "B", 10, 20, test=TEST, status=404),
          exchange("a2", "A", "C", 30, 40, test=TEST, status=None,
                   error=ErrorInfo("refused", "connection refused"))]
    spans, _ = synth.group(xs, TestCase(TEST, T0, T0 + 100 * MS, "failed"))
    by = {(s.exchange_id, s.kind): s for s in spans}
    assert by["t1", "client"].status == by["t1", "server"].status == "error"
    assert (by["a1", "client"].status, by["a1", "server"].status) == ("error", "unset")
    assert by["a2", "client"].status == "error"
    assert by["a2", "client"].status_message == "refused: connection refused"
    assert by["a2", "client"].end == T0 + 40 * MS  # the error time
    assert ("a2", "server") not in by  # C never saw the request


def test_traceparent_of_an_instrumented_caller_is_honoured(synth: Synthesizer) -> None:
    # A is instrumented: it sends its own client span's context to B.
    tp = format_traceparent(OTHER_TRACE, INSTRUMENTED_PARENT)
    b_own = 0x00F067AA0BA902B7  # B is instrumented too, and propagates
    spans, findings = synth.group(chain(a1=tp, b1=format_traceparent(OTHER_TRACE, b_own)),
                                  TestCase(TEST, T0, T0 + 100 * MS, "passed"))
    trace, test_span = synth.test_root(TEST)
    assert findings == []
    assert shape(spans) == [
        (TEST, "internal", "tests", test_span, None, "root", 0, 100),
        ("GET", "client", "tests", client("t1"), test_span, "root", 0, 100),
        ("GET", "server", "A", server("t1"), client("t1"), "exchange", 1, 100),
        # no CLIENT span for a1: A made its own
        ("POST", "server", "B", server("a1"), INSTRUMENTED_PARENT, "header", 11, 60),
        ("GET /c", "server", "C", server("b1"), b_own, "header", 21, 40),
        ("DELETE", "client", "A", client("a2"), server("t1"), "timing", 70, 90),
        ("DELETE", "server", "D", server("a2"), client("a2"), "exchange", 71, 90),
    ]
    traces = {s.exchange_id: s.trace_id for s in spans if s.kind == "server"}
    assert traces == {"t1": trace, "a1": OTHER_TRACE, "b1": OTHER_TRACE, "a2": trace}


def test_an_injected_traceparent_names_the_synthesized_client_span(synth: Synthesizer) -> None:
    # tapproxy injected these while recording: the trace decided live, the client span id.
    trace, test_span = synth.test_root(TEST)
    injected = {x: format_traceparent(trace, client(x)) for x in ("t1", "a1", "b1", "a2")}
    spans, findings = synth.group(chain(**injected), TestCase(TEST, T0, T0 + 100 * MS))
    assert {s.trace_id for s in spans} == {trace}
    assert shape(spans) == [
        (TEST, "internal", "tests", test_span, None, "root", 0, 100),
        ("GET", "client", "tests", client("t1"), test_span, "root", 0, 100),
        ("GET", "server", "A", server("t1"), client("t1"), "header", 1, 100),
        ("POST", "client", "A", client("a1"), server("t1"), "timing", 10, 60),
        ("POST", "server", "B", server("a1"), client("a1"), "header", 11, 60),
        ("GET", "client", "B", client("b1"), server("a1"), "timing", 20, 40),
        ("GET /c", "server", "C", server("b1"), client("b1"), "header", 21, 40),
        ("DELETE", "client", "A", client("a2"), server("t1"), "timing", 70, 90),
        ("DELETE", "server", "D", server("a2"), client("a2"), "header", 71, 90),
    ]
    # Each uninstrumented service that makes calls is shown not to propagate.
    assert [(f.kind, f.service, f.exchange_id) for f in findings] == [
        ("context_lost", "A", "a1"), ("context_lost", "B", "b1"), ("context_lost", "A", "a2")]
    assert all(f.message.endswith("sends no traceparent (tapproxy injected one)")
               for f in findings)


def test_concurrent_requests_make_an_ambiguous_parent_with_links(synth: Synthesizer) -> None:
    xs = [exchange("r0", "tests", "B", 0, 8, test=TEST),  # over before the call starts
          exchange("r1", "tests", "B", 2, 100, test=TEST),
          exchange("r2", "tests", "B", 5, 100, test=TEST),
          exchange("c1", "B", "C", 10, 30, test=TEST),
          exchange("r3", "tests", "B", 12, 100, test=TEST)]  # starts after the call
    spans, _ = synth.group(xs, TestCase(TEST, T0, T0 + 100 * MS))
    trace, _ = synth.test_root(TEST)
    call = next(s for s in spans if s.exchange_id == "c1" and s.kind == "client")
    assert call.parent_span_id == server("r2")  # the nearest enclosing: the latest start
    assert call.attributes[INFERENCE] == "ambiguous"
    assert call.links == (SpanLink(trace, server("r1"), {INFERENCE: "ambiguous candidate"}),)


def test_one_enclosing_request_is_a_timing_parent_without_links(synth: Synthesizer) -> None:
    xs = [exchange("r0", "tests", "B", 0, 8, test=TEST),
          exchange("r1", "tests", "B", 9, 50, test=TEST),
          exchange("c1", "B", "C", 10, 30, test=TEST)]
    spans, _ = synth.group(xs, TestCase(TEST, T0, T0 + 100 * MS))
    call = next(s for s in spans if s.exchange_id == "c1" and s.kind == "client")
    assert (call.parent_span_id, call.attributes[INFERENCE], call.links) == (
        server("r1"), "timing", ())


def test_choose_parent_boundaries() -> None:
    a = Candidate("a", 10, 20, 1, 11, False)
    b = Candidate("b", 15, None, 1, 12, False)  # still in flight
    assert choose_parent([a], 10) == (a, [], "timing")  # at the very start
    assert choose_parent([a], 20) == (a, [], "timing")  # at the very end
    assert choose_parent([a], 21) == (None, [], "root")
    assert choose_parent([a], 9) == (None, [], "root")
    assert choose_parent([a, b], 1000) == (b, [], "timing")
    assert choose_parent([b, a], 16) == (b, [a], "ambiguous")
    same = Candidate("c", 10, 20, 1, 13, False)  # the same start: ordered by exchange id
    assert choose_parent([same, a], 12) == (same, [a], "ambiguous")


def test_a_caller_known_only_by_its_address_matches_no_callee(synth: Synthesizer) -> None:
    xs = [exchange("r1", "tests", "B", 0, 100, test=TEST),
          # a peer-named caller whose address text happens to equal the callee name
          exchange("p1", "B", "C", 10, 20, test=TEST, caller_source="peer"),
          exchange("p2", "172.18.0.9:40000", "C", 30, 40, test=TEST, caller_source="peer",
                   caller_address="172.18.0.9:40000")]
    spans, _ = synth.group(xs, TestCase(TEST, T0, T0 + 100 * MS))
    _, test_span = synth.test_root(TEST)
    for xid, service in (("p1", "B"), ("p2", "172.18.0.9:40000")):
        call = next(s for s in spans if s.exchange_id == xid and s.kind == "client")
        assert (call.parent_span_id, call.attributes[INFERENCE]) == (test_span, "root")
        assert call.service == service  # unknown stays visibly unknown


def test_context_lost_by_a_service_that_does_not_propagate(synth: Synthesizer) -> None:
    tp = format_traceparent(OTHER_TRACE, INSTRUMENTED_PARENT)
    spans, findings = synth.group(chain(a1=tp), TestCase(TEST, T0, T0 + 100 * MS))
    message = ("service B drops trace context: it received a traceparent (exchange a1) but "
               "its call to C GET /c sends no traceparent")
    assert findings == [Finding("context_lost", "B", message, "b1", TEST)]
    call = next(s for s in spans if s.exchange_id == "b1" and s.kind == "client")
    assert call.events == (SpanEvent("tapproxy.context_lost", T0 + 20 * MS,
                                     {"tapproxy.incoming_exchange_id": "a1",
                                      "message": message}),)
    # the call stays in the trace B was asked to join
    assert (call.trace_id, call.parent_span_id) == (OTHER_TRACE, server("a1"))
    others = [s for s in spans if s is not call]
    assert not any(s.events for s in others)


def test_context_lost_when_a_service_starts_another_trace(synth: Synthesizer) -> None:
    tp = format_traceparent(OTHER_TRACE, INSTRUMENTED_PARENT)
    fresh = format_traceparent(0x1234, 0x5678)  # B sends a new trace instead
    spans, findings = synth.group(chain(a1=tp, b1=fresh), TestCase(TEST, T0, T0 + 100 * MS))
    assert [(f.kind, f.service, f.exchange_id) for f in findings] == [
        ("context_lost", "B", "b1")]
    assert findings[0].message.endswith("starts another trace")
    c = next(s for s in spans if s.exchange_id == "b1")
    assert (c.kind, c.trace_id, c.parent_span_id) == ("server", 0x1234, 0x5678)


def test_no_context_to_lose_without_an_incoming_traceparent(synth: Synthesizer) -> None:
    _, findings = synth.group(chain(), TestCase(TEST, T0, T0 + 100 * MS))
    assert findings == []


def test_exchanges_of_no_test_are_roots_of_their_own_traces(synth: Synthesizer) -> None:
    spans, findings = synth.group(chain(test=None))
    assert findings == []
    assert not any(s.kind == "internal" for s in spans)
    root = spans[0]
    assert (root.exchange_id, root.kind, root.parent_span_id, root.attributes[INFERENCE]) == (
        "t1", "client", None, "root")
    assert {s.trace_id for s in spans} == {trace_id_for(SALT, "t1")}
    nested = next(s for s in spans if s.exchange_id == "b1" and s.kind == "client")
    assert (nested.parent_span_id, nested.attributes[INFERENCE]) == (server("a1"), "timing")


def test_a_request_the_callee_never_saw_is_no_parent(synth: Synthesizer) -> None:
    xs = [exchange("r1", "tests", "B", 0, 100, test=TEST),
          exchange("bad", "tests", "B", 10, 12, test=TEST, status=None, scheme="https",
                   error=ErrorInfo("tls", "certificate verify failed")),
          exchange("c1", "B", "C", 11, 30, test=TEST)]
    spans, _ = synth.group(xs, TestCase(TEST, T0, T0 + 100 * MS))
    ids = {s.span_id for s in spans}
    call = next(s for s in spans if s.exchange_id == "c1" and s.kind == "client")
    assert call.parent_span_id in ids
    assert (call.parent_span_id, call.attributes[INFERENCE]) == (server("r1"), "timing")


SERVICES = ["A", "B", "C", "D"]


@st.composite
def exchanges(draw) -> list:
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        start = draw(st.integers(0, 100))
        status = draw(st.sampled_from([200, 404, 500, None]))
        out.append(exchange(
            f"x{i}", draw(st.sampled_from(["tests", *SERVICES])), draw(st.sampled_from(SERVICES)),
            start, start + draw(st.integers(2, 60)), test=TEST, status=status,
            error=None if status else ErrorInfo(draw(st.sampled_from(["timeout", "reset"])), ""),
        ))
    return out


@settings(max_examples=60, deadline=None)
@given(exchanges(), st.randoms(use_true_random=False))
def test_every_inferred_parent_exists_and_encloses_the_call(xs, rnd) -> None:
    synth = Synthesizer(SALT)
    case = TestCase(TEST, T0, T0 + 200 * MS, "passed")
    spans, findings = synth.group(xs, case)
    trace, test_span = synth.test_root(TEST)
    by_id = {s.span_id: s for s in spans}
    by_x = {x.id: x for x in xs}
    assert len(by_id) == len(spans) == 1 + 2 * len(xs)
    assert findings == []
    assert {s.trace_id for s in spans} == {trace}
    for s in spans[1:]:
        x = by_x[s.exchange_id]
        parent = by_id[s.parent_span_id]
        how = s.attributes[INFERENCE]
        if s.kind == "server":
            assert (parent.span_id, how, s.service) == (client(x.id), "exchange", x.callee.name)
            continue
        assert s.service == x.caller.name
        if how == "root":
            assert parent.span_id == test_span
        else:
            assert how in ("timing", "ambiguous")
            assert (parent.kind, parent.service) == ("server", x.caller.name)
            incoming = by_x[parent.exchange_id]
            assert incoming.timing.request_start <= x.timing.request_start <= incoming.timing.end
            assert (how == "ambiguous") == bool(s.links)
    shuffled = list(xs)
    rnd.shuffle(shuffled)
    assert Synthesizer(SALT).group(shuffled, case) == (spans, findings)


@settings(max_examples=60, deadline=None)
@given(exchanges())
def test_a_group_gives_the_spans_of_its_exchanges_one_at_a_time(xs) -> None:
    # group() places each call once (ParentIndex); exchange() places it again from its
    # candidates, as live recording calls it: the same spans either way.
    synth = Synthesizer(SALT)
    case = TestCase(TEST, T0, T0 + 200 * MS, "passed")
    index: ParentIndex[Candidate] = ParentIndex()
    spans = []
    for x in sorted(xs, key=lambda x: (x.timing.request_start, x.id)):
        parent, others, _ = index.parent_of(x)
        mine, me, _ = synth.exchange(x, [*others, parent] if parent is not None else [])
        spans.extend(mine)
        index.add(x, me)
    spans.insert(0, synth.test_span(case, max(s.end for s in spans)))
    assert synth.group(xs, case) == (spans, [])
