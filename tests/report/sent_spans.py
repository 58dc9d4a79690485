"""A capture in which an instrumented service (payments) sent its own spans over OTLP.

Written by the real CaptureWriter; the spans are made by the real OpenTelemetry SDK and
encoded as the OTLP exporter encodes them. tapproxy injected a traceparent into the
shop → payments call (its own client span's id), so payments' SERVER span is that
exchange's server half; under it payments sent an INTERNAL span that failed, under that
one a span with a hostile name, and one span whose parent is nowhere in the test.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tapproxy.capture import SpanBatch, TestCase
from tapproxy.spans.context import format_traceparent, span_id_for
from tests.spans.build import MS, T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"
TRACE = 0x0AF7651916CD43DD8448EB211C80319C
HOSTILE_SPAN = "<script>alert('span')</script>"
NOWHERE = 0x00000000DEADBEEF  # a parent span id no span of the test has


def _payments_spans(traceparent: str) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "payments"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("payments.app")
    extract = TraceContextTextMapPropagator().extract
    server = tracer.start_span("POST /charges", extract({"traceparent": traceparent}),
                               kind=SpanKind.SERVER, start_time=T0 + 12 * MS)
    card = tracer.start_span("card processor", trace.set_span_in_context(server),
                             kind=SpanKind.INTERNAL, start_time=T0 + 14 * MS,
                             attributes={"card.network": "visa", "card.retries": 2})
    card.set_status(Status(StatusCode.ERROR, "card declined"))
    hostile = tracer.start_span(HOSTILE_SPAN, trace.set_span_in_context(card),
                                kind=SpanKind.CLIENT, start_time=T0 + 15 * MS,
                                attributes={"note": "<img src=x onerror=alert(2)>"})
    hostile.end(end_time=T0 + 20 * MS)
    card.end(end_time=T0 + 30 * MS)
    server.end(end_time=T0 + 38 * MS)
    lost = tracer.start_span("cache warm", extract(
        {"traceparent": format_traceparent(TRACE, NOWHERE)}), kind=SpanKind.INTERNAL,
        start_time=T0 + 42 * MS)
    lost.end(end_time=T0 + 44 * MS)
    provider.shutdown()
    return list(memory.get_finished_spans())


def sent_spans_capture(path: Path) -> Path:
    """tests → shop → payments, payments instrumented (see the module's docstring)."""
    injected = format_traceparent(TRACE, span_id_for("p1", "client"))
    batch = encode_spans(_payments_spans(injected)).SerializeToString()
    records = [
        exchange("c1", "tests", "shop", 0, 50, test=TEST, method="POST", path="/checkout"),
        exchange("p1", "shop", "payments", 10, 40, test=TEST, method="POST", path="/charges",
                 status=402, headers=[("traceparent", injected)]),
        SpanBatch(T0 + 45 * MS, "application/x-protobuf", batch, "127.0.0.1:4318"),
        TestCase(TEST, T0 - MS, T0 + 60 * MS, "failed"),
    ]
    return write_capture(path, records, meta={"otlp_receive": True})
