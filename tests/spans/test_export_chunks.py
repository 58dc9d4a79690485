"""A test of many calls leaves as several OTLP requests of bounded size, never as one
request holding every span (200,000 spans made one 1.2 GB line)."""

from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tapproxy.capture import TestCase
from tapproxy.spans.export import SPANS_PER_REQUEST, OtlpHttpExporter, write_otlp_json
from tapproxy.spans.infer import Synthesizer
from tests.spans.build import MS, T0, exchange
from tests.spans.test_otlp import collector  # noqa: F401 - the real OTLP/HTTP endpoint

CALLS = SPANS_PER_REQUEST  # two spans each: every span of the test fits in three requests


def many_spans():
    xs = [exchange(f"x{i:05d}", "tests", "gw", 2 * i, 2 * i + 1, test="t") for i in range(CALLS)]
    spans, _ = Synthesizer("salt").group(xs, TestCase("t", T0, T0 + 3 * CALLS * MS, "passed"))
    return spans


def span_ids(resource_spans) -> list[str]:
    return [s["spanId"] for r in resource_spans for ss in r["scopeSpans"] for s in ss["spans"]]


def test_otlp_json_is_written_in_requests_of_bounded_size(tmp_path) -> None:
    spans = many_spans()
    assert len(spans) == 2 * CALLS + 1
    path = tmp_path / "spans.json"
    with open(path, "w", encoding="utf-8") as f:
        write_otlp_json(spans, f)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    sizes = [len(span_ids(doc["resourceSpans"])) for doc in lines]
    assert sizes == [SPANS_PER_REQUEST, SPANS_PER_REQUEST, 1]
    ids = [i for doc in lines for i in span_ids(doc["resourceSpans"])]
    assert sorted(ids) == sorted(f"{s.span_id:016x}" for s in spans)  # every span once


def test_otlp_http_export_sends_requests_of_bounded_size(collector) -> None:  # noqa: F811
    svc, received, _ = collector
    spans = many_spans()
    exporter = OtlpHttpExporter(svc.url, timeout=5)
    try:
        exporter.export(spans)
    finally:
        exporter.close()
    assert exporter.exported == len(spans)
    counts = []
    for _, body in received:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(body)
        counts.append(sum(len(ss.spans) for rs in msg.resource_spans
                          for ss in rs.scope_spans))
    assert counts == [SPANS_PER_REQUEST, SPANS_PER_REQUEST, 1]
