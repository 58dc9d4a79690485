"""A capture file to spans, one test case at a time, and the `tapproxy spans` command.

Captures are written by the real CaptureWriter and read by the real reader.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tapproxy.capture import SpanBatch, TestCase
from tapproxy.spans.context import format_traceparent, span_id_for
from tapproxy.spans.infer import INFERENCE
from tapproxy.spans.model import Span
from tapproxy.spans.stream import SpanGroup, merge_received, spans_of_capture
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture

CHECKOUT = "tests/test_shop.py::test_checkout"
REFUND = "tests/test_shop.py::test_refund"
A_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
A_CLIENT = 0xB7AD6B7169203331  # the client span of instrumented A


def client(xid: str) -> int:
    return span_id_for(xid, "client")


def server(xid: str) -> int:
    return span_id_for(xid, "server")


def interleaved() -> list:
    """Two tests running at once (xdist), records in completion order, and a stray call."""
    return [
        exchange("c2", "shop", "stock", 10, 20, test=CHECKOUT, path="/stock"),
        exchange("r2", "shop", "payments", 12, 30, test=REFUND, method="POST",
                 path="/refunds", status=500),
        exchange("c1", "tests", "shop", 0, 50, test=CHECKOUT, method="POST", path="/checkout"),
        exchange("n1", "cron", "shop", 40, 45, path="/tick"),
        TestCase(CHECKOUT, T0 - MS, T0 + 60 * MS, "passed"),
        exchange("r1", "tests", "shop", 5, 70, test=REFUND, method="POST", path="/refund",
                 status=502),
        TestCase(REFUND, T0 + 4 * MS, T0 + 80 * MS, "failed"),
    ]


def summary(group: SpanGroup) -> list[tuple]:
    return [(s.exchange_id, s.kind, s.service, s.parent_span_id, s.attributes.get(INFERENCE))
            for s in group.spans]


def test_groups_follow_test_cases_not_file_order(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    groups = list(spans_of_capture(path))
    assert [(g.test, g.outcome, g.exchanges) for g in groups] == [
        (CHECKOUT, "passed", 2), (REFUND, "failed", 2), (None, None, 1)]
    checkout, refund, stray = groups
    test_span = checkout.spans[0]
    assert (test_span.name, test_span.kind, test_span.status) == (CHECKOUT, "internal", "unset")
    assert summary(checkout)[1:] == [
        ("c1", "client", "tests", test_span.span_id, "root"),
        ("c1", "server", "shop", client("c1"), "exchange"),
        ("c2", "client", "shop", server("c1"), "timing"),
        ("c2", "server", "stock", client("c2"), "exchange"),
    ]
    assert len({s.trace_id for s in checkout.spans}) == 1
    assert (refund.spans[0].name, refund.spans[0].status) == (REFUND, "error")
    assert summary(refund)[1:] == [
        ("r1", "client", "tests", refund.spans[0].span_id, "root"),
        ("r1", "server", "shop", client("r1"), "exchange"),
        # r2 started while shop handled both c1 and r1, but c1 is another test's
        ("r2", "client", "shop", server("r1"), "timing"),
        ("r2", "server", "payments", client("r2"), "exchange"),
    ]
    assert {s.trace_id for s in refund.spans}.isdisjoint({s.trace_id for s in checkout.spans})
    assert summary(stray) == [("n1", "client", "cron", None, "root"),
                              ("n1", "server", "shop", client("n1"), "exchange")]
    assert all(g.findings == [] for g in groups)


def test_the_same_capture_read_twice_gives_the_same_spans(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    assert list(spans_of_capture(path)) == list(spans_of_capture(path))


def test_bodies_are_added_only_when_asked(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", [
        exchange("x", "a", "b", 0, 5, request_body=b"ping", response_body=b"pong")])
    (plain,) = spans_of_capture(path)
    (with_bodies,) = spans_of_capture(path, bodies=True)
    assert not any("tapproxy.request.body" in s.attributes for s in plain.spans)
    assert all(s.attributes["tapproxy.request.body"] == "ping" for s in with_bodies.spans)


def test_late_exchanges_do_not_make_a_second_test_span(tmp_path: Path) -> None:
    records = [
        exchange("c1", "tests", "shop", 0, 50, test=CHECKOUT),
        TestCase(CHECKOUT, T0, T0 + 60 * MS, "passed"),
        # a background call of the test's that completed after the test closed
        exchange("late", "tests", "mailer", 55, 90, test=CHECKOUT),
    ]
    groups = list(spans_of_capture(write_capture(tmp_path / "run.tap", records)))
    assert [(g.test, g.outcome, g.exchanges) for g in groups] == [
        (CHECKOUT, "passed", 1), (CHECKOUT, None, 1)]
    first, late = groups
    spans = first.spans + late.spans
    assert [s.kind for s in spans].count("internal") == 1
    test_span = first.spans[0]
    assert summary(late) == [("late", "client", "tests", test_span.span_id, "root"),
                             ("late", "server", "mailer", client("late"), "exchange")]
    assert {s.trace_id for s in spans} == {test_span.trace_id}


def test_a_test_never_closed_is_still_a_group(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", [exchange("c1", "tests", "shop", 0, 50,
                                                         test=CHECKOUT)])
    (group,) = spans_of_capture(path)
    assert (group.test, group.outcome, group.exchanges) == (CHECKOUT, None, 1)
    assert (group.spans[0].name, group.spans[0].start, group.spans[0].end) == (
        CHECKOUT, T0, T0 + 50 * MS)
    assert "test.case.result.status" not in group.spans[0].attributes


def test_a_test_without_exchanges_has_its_span(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", [TestCase(CHECKOUT, T0, T0 + 5, "skipped")])
    (group,) = spans_of_capture(path)
    assert [(s.name, s.kind, s.start, s.end) for s in group.spans] == [
        (CHECKOUT, "internal", T0, T0 + 5)]


def test_exchanges_of_no_test_come_in_windows(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap",
                         [exchange(f"n{i}", "cron", "shop", i * 10, i * 10 + 5) for i in range(5)])
    groups = list(spans_of_capture(path, window=2))
    assert [(g.test, g.exchanges) for g in groups] == [(None, 2), (None, 2), (None, 1)]
    assert [s.exchange_id for g in groups for s in g.spans] == [
        x for i in range(5) for x in (f"n{i}", f"n{i}")]


def test_a_truncated_capture_yields_what_is_whole_and_reports_the_tail(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved(), index=False)  # a killed one's
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the last record (REFUND's TestCase) is cut
    tails: list[str] = []
    groups = list(spans_of_capture(path, on_tail=tails.append))
    assert [(g.test, g.outcome) for g in groups] == [(CHECKOUT, "passed"), (REFUND, None),
                                                    (None, None)]
    assert len(tails) == 1
    assert str(path) in tails[0]
    assert "ends inside record" in tails[0]
    tails.clear()
    list(spans_of_capture(write_capture(tmp_path / "whole.tap", interleaved()),
                          on_tail=tails.append))
    assert tails == []


# -- spans sent by instrumented services ------------------------------------------------


def b_server_span(traceparent: str) -> ReadableSpan:
    """B is instrumented on its server side: its SERVER span joins A's trace."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "B"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    span = provider.get_tracer("b.http").start_span("POST /b", ctx, kind=SpanKind.SERVER,
                                                   start_time=T0 + 11 * MS)
    span.end(end_time=T0 + 59 * MS)
    provider.shutdown()
    (finished,) = memory.get_finished_spans()
    return finished


def test_received_server_span_replaces_the_synthesized_one(tmp_path: Path) -> None:
    tp = format_traceparent(A_TRACE, A_CLIENT)
    real = b_server_span(tp)
    records = [
        exchange("b1", "B", "C", 20, 40, test=CHECKOUT, path="/c"),  # B does not propagate
        exchange("a1", "A", "B", 10, 60, test=CHECKOUT, method="POST", path="/b",
                 headers=[("traceparent", tp)]),
        SpanBatch(T0 + 70 * MS, "application/x-protobuf",
                  encode_spans([real]).SerializeToString(), "10.0.0.2:4318"),
        TestCase(CHECKOUT, T0, T0 + 80 * MS, "passed"),
    ]
    path = write_capture(tmp_path / "run.tap", records, meta={"otlp_receive": True})
    (group,) = spans_of_capture(path)
    real_id = real.context.span_id
    assert summary(group)[1:] == [
        # no synthesized SERVER span for a1: B sent its own, with the same parent
        ("b1", "client", "B", real_id, "timing"),  # re-parented to the real span
        ("b1", "server", "C", client("b1"), "exchange"),
        (None, "server", "B", A_CLIENT, None),
    ]
    received = group.spans[-1]
    assert (received.span_id, received.trace_id, received.synthesized) == (
        real_id, A_TRACE, False)
    assert server("a1") not in {s.span_id for s in group.spans}
    assert [(f.kind, f.service) for f in group.findings] == [("context_lost", "B")]


def test_received_spans_are_ignored_unless_the_capture_received_some(tmp_path: Path) -> None:
    tp = format_traceparent(A_TRACE, A_CLIENT)
    batch = SpanBatch(T0, "application/x-protobuf",
                      encode_spans([b_server_span(tp)]).SerializeToString())
    x = exchange("a1", "A", "B", 10, 60, headers=[("traceparent", tp)])
    (group,) = spans_of_capture(write_capture(tmp_path / "run.tap", [x, batch]))
    assert [(s.exchange_id, s.kind) for s in group.spans] == [("a1", "server")]


def test_received_spans_of_an_unknown_trace_come_last(tmp_path: Path) -> None:
    lone = b_server_span(format_traceparent(0x1234, 0x5678))
    records = [exchange("c1", "tests", "shop", 0, 50, test=CHECKOUT),
               SpanBatch(T0, "application/x-protobuf", encode_spans([lone]).SerializeToString()),
               TestCase(CHECKOUT, T0, T0 + 60 * MS, "passed")]
    groups = list(spans_of_capture(write_capture(tmp_path / "run.tap", records,
                                                 meta={"otlp_receive": True})))
    assert [(g.test, len(g.spans)) for g in groups] == [(CHECKOUT, 3), (None, 1)]
    assert groups[1].spans[0].span_id == lone.context.span_id


def span(span_id: int, parent: int | None, kind: str, trace: int = 7, **kw) -> Span:
    return Span(trace, span_id, parent, f"s{span_id}", kind, "svc", 0, 1, **kw)


def test_merge_received() -> None:
    synth = [span(1, None, "client"), span(2, 1, "server"), span(3, 2, "client"),
             span(4, 3, "server"), span(5, 2, "internal")]
    real = [span(20, 1, "server", synthesized=False), span(21, 20, "internal",
                                                            synthesized=False)]
    merged = merge_received(synth, real)
    assert [(s.span_id, s.parent_span_id) for s in merged] == [
        (1, None), (3, 20), (4, 3), (5, 20), (20, 1), (21, 20)]
    assert merge_received(synth, []) == synth
    # the same parent in another trace is another request
    other = [span(20, 1, "server", trace=8, synthesized=False)]
    assert [s.span_id for s in merge_received(synth, other)] == [1, 2, 3, 4, 5, 20]
    # a received CLIENT span replaces nothing
    assert len(merge_received(synth, [span(30, 1, "client", synthesized=False)])) == 6


# -- memory ---------------------------------------------------------------------------


def many_tests(n: int):
    body = b"x" * 2048
    for t in range(n):
        name = f"tests/test_load.py::test_{t}"
        base = t * 1000
        yield exchange(f"{t}-0", "tests", "A", base, base + 100, test=name, response_body=body)
        for i in range(1, 20):
            yield exchange(f"{t}-{i}", "A", "B", base + i, base + i + 2, test=name,
                           response_body=body)
        yield TestCase(name, T0 + base * MS, T0 + (base + 100) * MS, "passed")


def peak_while_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        spans = sum(len(g.spans) for g in spans_of_capture(path))
        return spans, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_holds_one_test_at_a_time(tmp_path: Path) -> None:
    small = write_capture(tmp_path / "small.tap", many_tests(30))
    large = write_capture(tmp_path / "large.tap", many_tests(300))
    small_spans, small_peak = peak_while_reading(small)
    large_spans, large_peak = peak_while_reading(large)
    assert (small_spans, large_spans) == (30 * 41, 300 * 41)
    # Holding every exchange would take 10x the small capture's (bodies alone ~12 MB).
    assert large_peak < 3 * small_peak, (small_peak, large_peak)


# -- the command ----------------------------------------------------------------------


def test_cli_tree(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    out = run_cli("spans", path, "--tree")
    assert out.returncode == 0, out.stderr
    lines = [line.strip("│├└─ ") for line in out.stdout.splitlines()]
    assert [line.split("  ")[:3] for line in lines] == [
        [CHECKOUT, "pass", "61.0 ms"],
        ["tests → shop", "POST /checkout", "200"],
        ["shop → stock", "GET /stock", "200"],
        [REFUND, "fail", "76.0 ms"],
        ["tests → shop", "POST /refund", "502"],
        ["shop → payments", "POST /refunds", "500"],
        ["cron → shop", "GET /tick", "200"],
    ]
    assert "[timing]" in lines[2]
    assert "[root]" in lines[1]
    assert out.stderr.strip() == "12 spans for 2 tests"


def test_cli_out_writes_one_otlp_json_line_per_group(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    target = tmp_path / "spans.json"
    out = run_cli("spans", path, "--out", target)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # no tree unless asked, when writing somewhere
    docs = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(docs) == 3
    names = [sorted(s["name"] for r in d["resourceSpans"] for ss in r["scopeSpans"]
                    for s in ss["spans"]) for d in docs]
    assert names == [sorted([CHECKOUT, "POST", "POST", "GET", "GET"]),
                     sorted([REFUND, "POST", "POST", "POST", "POST"]),
                     ["GET", "GET"]]
    assert f"written to {target}" in out.stderr


def test_cli_test_glob(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    target = tmp_path / "spans.json"
    out = run_cli("spans", path, "--out", target, "--test", "*refund")
    assert out.returncode == 0, out.stderr
    (line,) = target.read_text().splitlines()
    assert REFUND in line and CHECKOUT not in line


def test_cli_bad_otlp_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    out = run_cli("spans", path, "--otlp", "ftp://x")
    assert out.returncode == 2
    assert out.stderr.startswith("tapproxy: error: ")
    assert out.stderr.count("\n") == 1
    assert "ftp://x" in out.stderr


def test_cli_truncated_capture_shows_what_it_can_then_fails(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "run.tap", interleaved())
    path.write_bytes(path.read_bytes()[:-7])
    out = run_cli("spans", path, "--tree")
    assert out.returncode == 2
    assert CHECKOUT in out.stdout
    assert out.stderr.splitlines()[-1].startswith(f"tapproxy: error: {path}: ends inside record")


def test_cli_missing_capture(tmp_path: Path) -> None:
    out = run_cli("spans", tmp_path / "missing.tap")
    assert out.returncode == 2
    assert out.stderr.strip() == f"tapproxy: error: {tmp_path / 'missing.tap'}: no such file"
