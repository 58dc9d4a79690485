"""Spans to and from OTLP: batches made by the real OpenTelemetry SDK, OTLP/JSON, and
export over OTLP/HTTP to a real (aiohttp) endpoint on a loopback port."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest
from aiohttp import web
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from tapproxy import __version__
from tapproxy.capture import SpanBatch, TestCase
from tapproxy.errors import SpansError
from tapproxy.spans.context import span_id_for
from tapproxy.spans.export import OtlpHttpExporter, traces_url, write_otlp_json
from tapproxy.spans.infer import INFERENCE, Synthesizer
from tapproxy.spans.model import Span, SpanEvent, SpanLink
from tapproxy.spans.otlp import decode_batch, parse_request, to_otlp_json, to_readable
from tests.conftest import Services, free_port
from tests.spans.build import MS, T0, exchange

LINKED = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags.SAMPLED)


def sdk_spans() -> list[ReadableSpan]:
    """What two instrumented services would send: orders (server + client), payments."""
    out: list[ReadableSpan] = []
    for service, version in (("orders", "1.2"), ("payments", "7")):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource({"service.name": service,
                                                     "service.version": version}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer(f"{service}.http", "0.1")
        if service == "orders":
            top = tracer.start_span(
                "GET /orders/{id}", kind=SpanKind.SERVER, start_time=T0 + 1_000,
                attributes={"http.route": "/orders/{id}", "http.response.status_code": 200,
                            "ratio": 0.5, "cached": True, "tags": ["a", "b"]},
                links=[Link(LINKED, {"why": "batch"})])
            top.add_event("cache.miss", {"key": "k1"}, timestamp=T0 + 1_500)
            child = tracer.start_span("SELECT", set_span_in_context(top), kind=SpanKind.CLIENT,
                                      start_time=T0 + 1_200)
            child.set_status(Status(StatusCode.ERROR, "deadlock"))
            child.end(end_time=T0 + 1_300)
            top.end(end_time=T0 + 2_000)
        else:
            s = tracer.start_span("charge", kind=SpanKind.INTERNAL, start_time=T0 + 3_000)
            s.set_status(Status(StatusCode.OK))
            s.end(end_time=T0 + 4_000)
        out.extend(memory.get_finished_spans())
        provider.shutdown()
    return out


def expected(spans: list[ReadableSpan]) -> list[Span]:
    """The Span values decode_batch must give for these SDK spans."""
    kinds = {SpanKind.SERVER: "server", SpanKind.CLIENT: "client",
             SpanKind.INTERNAL: "internal"}
    statuses = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
    return [Span(
        trace_id=s.context.trace_id, span_id=s.context.span_id,
        parent_span_id=s.parent.span_id if s.parent else None, name=s.name,
        kind=kinds[s.kind], service=s.resource.attributes["service.name"], start=s.start_time,
        end=s.end_time, attributes={k: list(v) if isinstance(v, tuple) else v
                                    for k, v in s.attributes.items()},
        status=statuses[s.status.status_code], status_message=s.status.description or "",
        events=tuple(SpanEvent(e.name, e.timestamp, dict(e.attributes)) for e in s.events),
        links=tuple(SpanLink(ln.context.trace_id, ln.context.span_id, dict(ln.attributes))
                    for ln in s.links),
        synthesized=False, resource=dict(s.resource.attributes),
        scope=s.instrumentation_scope.name,
    ) for s in spans]


def hex_ids(doc: dict) -> dict:
    """protobuf's JSON mapping (base64 ids) to OTLP/JSON (hex ids), done independently."""
    def walk(node):
        if isinstance(node, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                        and isinstance(v, str) else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(doc)


def test_decode_a_protobuf_batch_from_the_sdk() -> None:
    spans = sdk_spans()
    payload = encode_spans(spans).SerializeToString()
    decoded = decode_batch(SpanBatch(T0, "application/x-protobuf", payload, "10.0.0.4:5000"))
    assert decoded == expected(spans)
    by_name = {s.name: s for s in decoded}
    server, client = by_name["GET /orders/{id}"], by_name["SELECT"]
    # spot checks on what matters most, in case `expected` shares a mistake
    assert client.parent_span_id == server.span_id
    assert client.trace_id == server.trace_id
    assert server.parent_span_id is None
    assert (server.kind, client.kind, by_name["charge"].kind) == ("server", "client",
                                                                  "internal")
    assert (client.status, client.status_message) == ("error", "deadlock")
    assert by_name["charge"].status == "ok"
    assert server.attributes == {"http.route": "/orders/{id}",
                                 "http.response.status_code": 200, "ratio": 0.5,
                                 "cached": True, "tags": ["a", "b"]}
    assert server.events == (SpanEvent("cache.miss", T0 + 1_500, {"key": "k1"}),)
    assert server.links == (SpanLink(LINKED.trace_id, LINKED.span_id, {"why": "batch"}),)
    assert (server.service, server.resource["service.version"], server.scope) == (
        "orders", "1.2", "orders.http")
    assert (server.start, server.end) == (T0 + 1_000, T0 + 2_000)
    assert by_name["charge"].service == "payments"


@pytest.mark.parametrize("enums_as", ["integers", "names"])
def test_decode_an_otlp_json_batch(enums_as: str) -> None:
    spans = sdk_spans()
    doc = hex_ids(json_format.MessageToDict(encode_spans(spans),
                                            use_integers_for_enums=enums_as == "integers"))
    assert re.fullmatch(r"[0-9a-f]{32}", doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
                        ["traceId"])
    payload = json.dumps(doc).encode()
    decoded = decode_batch(SpanBatch(T0, "application/json; charset=utf-8", payload))
    assert decoded == expected(spans)


def test_a_span_without_service_name_is_unknown_service() -> None:
    msg = encode_spans(sdk_spans())
    del msg.resource_spans[0].resource.attributes[:]
    decoded = decode_batch(SpanBatch(T0, "application/x-protobuf", msg.SerializeToString()))
    assert {s.service for s in decoded} == {"unknown_service", "payments"}


@pytest.mark.parametrize(("payload", "content_type"), [
    (b"\xff\xff\xff\xff", "application/x-protobuf"),
    (b"\x0a\x05abc", "application/x-protobuf"),  # a length running past the end
    (b"{not json", "application/json"),
    (b"\xff\xfe", "application/json"),
    (b'{"resourceSpans": 5}', "application/json"),
    (b'[{"resourceSpans": []}]', "application/json"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}', "application/json"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
     "application/json"),
])
def test_parse_errors_are_spans_errors(payload: bytes, content_type: str) -> None:
    with pytest.raises(SpansError, match=re.escape(f"not an OTLP traces request ({content_type})")):
        decode_batch(SpanBatch(T0, content_type, payload))


@pytest.mark.parametrize("payload", [b"null", b"42", b"true", b'"resourceSpans"'])
def test_a_json_document_that_is_not_an_object_is_a_spans_error(payload: bytes) -> None:
    with pytest.raises(SpansError):
        parse_request(payload, "application/json")


def synthesized() -> list[Span]:
    xs = [exchange("t1", "tests", "orders", 0, 100, test="t", path="/orders/42", status=500,
                   route="/orders/{id}"),
          exchange("o1", "orders", "stock", 10, 60, test="t", path="/stock?sku=1")]
    spans, _ = Synthesizer("salt").group(xs, TestCase("t", T0, T0 + 120 * MS, "failed"))
    return spans


def test_to_otlp_json_has_hex_ids_integer_enums_and_string_times() -> None:
    spans = synthesized()
    doc = to_otlp_json(spans)
    json.dumps(doc)  # plain JSON
    resources = doc["resourceSpans"]
    services = [r["resource"]["attributes"] for r in resources]
    assert sorted(a[0]["value"]["stringValue"] for a in services) == ["orders", "stock",
                                                                      "tests"]
    assert all(len(a) == 1 and a[0]["key"] == "service.name" for a in services)
    out = {}
    for r in resources:
        (scope,) = r["scopeSpans"]
        assert scope["scope"] == {"name": "tapproxy", "version": __version__}
        for s in scope["spans"]:
            out[s["spanId"]] = s
    assert len(out) == len(spans)
    for s in spans:
        j = out[f"{s.span_id:016x}"]
        assert j["traceId"] == f"{s.trace_id:032x}"
        assert re.fullmatch(r"[0-9a-f]{32}", j["traceId"])
        assert re.fullmatch(r"[0-9a-f]{16}", j["spanId"])
        if s.parent_span_id is None:
            assert "parentSpanId" not in j
        else:
            assert j["parentSpanId"] == f"{s.parent_span_id:016x}"
        assert j["kind"] == {"internal": 1, "server": 2, "client": 3}[s.kind]
        assert j["startTimeUnixNano"] == str(s.start)
        assert j["endTimeUnixNano"] == str(s.end)
        assert j["name"] == s.name
        assert j["status"].get("code", 0) == {"unset": 0, "error": 2}[s.status]
    test_span = out[f"{span_id_for('test:t', 'test'):016x}"]
    assert test_span["status"] == {"code": 2, "message": "test failed"}
    server = out[f"{span_id_for('t1', 'server'):016x}"]
    attrs = {a["key"]: a["value"] for a in server["attributes"]}
    assert attrs["http.response.status_code"] == {"intValue": "500"}
    assert attrs["http.route"] == {"stringValue": "/orders/{id}"}
    assert attrs[INFERENCE] == {"stringValue": "exchange"}


def test_otlp_json_decodes_back_to_the_same_spans() -> None:
    spans = synthesized()
    payload = json.dumps(to_otlp_json(spans)).encode()
    back = decode_batch(SpanBatch(T0, "application/json", payload))
    as_received = [dataclasses.replace(s, synthesized=False, exchange_id=None,
                                       resource={"service.name": s.service}) for s in spans]
    assert sorted(back, key=lambda s: s.span_id) == sorted(as_received, key=lambda s: s.span_id)


def test_write_otlp_json_writes_one_line_per_call(tmp_path) -> None:
    path = tmp_path / "spans.json"
    with open(path, "w", encoding="utf-8") as f:
        write_otlp_json(synthesized(), f)
        write_otlp_json([], f)  # nothing: no line
        write_otlp_json(synthesized()[:1], f)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == to_otlp_json(synthesized())


def test_received_spans_keep_their_resource_and_scope() -> None:
    received = decode_batch(SpanBatch(T0, "application/x-protobuf",
                                      encode_spans(sdk_spans()).SerializeToString()))
    mine = synthesized()
    readable = to_readable(received + mine)
    orders, test_span = readable[1], readable[len(received)]
    assert orders.name == "GET /orders/{id}"
    assert dict(orders.resource.attributes) == {"service.name": "orders",
                                                "service.version": "1.2"}
    assert orders.instrumentation_scope.name == "orders.http"
    assert test_span.name == "t"
    assert dict(test_span.resource.attributes) == {"service.name": "tests"}
    assert (test_span.instrumentation_scope.name,
            test_span.instrumentation_scope.version) == ("tapproxy", __version__)
    # the synthesized span of the same service is a resource of its own
    same_service = next(r for r, s in zip(readable[len(received):], mine, strict=True)
                        if s.service == "orders")
    assert dict(same_service.resource.attributes) == {"service.name": "orders"}


@pytest.mark.parametrize(("url", "endpoint"), [
    ("http://collector:4318", "http://collector:4318/v1/traces"),
    ("http://collector:4318/", "http://collector:4318/v1/traces"),
    ("https://collector/otlp/v1/traces", "https://collector/otlp/v1/traces"),
])
def test_traces_url(url: str, endpoint: str) -> None:
    assert traces_url(url) == endpoint


@pytest.mark.parametrize("url", ["ftp://x", "collector:4318", "http://", "", "/v1/traces"])
def test_bad_otlp_urls(url: str) -> None:
    with pytest.raises(SpansError, match="bad OTLP URL"):
        traces_url(url)


@pytest.fixture
def collector(services: Services):
    """A real OTLP/HTTP endpoint: POST /v1/traces, keeps each body, answers as told."""
    received: list[tuple[str, bytes]] = []
    answer = {"status": 200}

    async def traces(request: web.Request) -> web.Response:
        received.append((request.headers.get("content-type", ""), await request.read()))
        return web.Response(status=answer["status"], body=b"",
                            content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    svc = services.start("collector", app)
    return svc, received, answer


def test_export_over_otlp_http(collector) -> None:
    svc, received, _ = collector
    spans = synthesized()
    exporter = OtlpHttpExporter(svc.url, timeout=5)
    assert exporter.url == f"{svc.url}/v1/traces"
    try:
        exporter.export(spans)
        exporter.export([])  # nothing to send: no request
    finally:
        exporter.close()
    assert exporter.exported == len(spans)
    assert len(received) == 1
    content_type, body = received[0]
    assert content_type == "application/x-protobuf"
    msg = ExportTraceServiceRequest()
    msg.ParseFromString(body)
    got = {}
    for rs in msg.resource_spans:
        service = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            assert (ss.scope.name, ss.scope.version) == ("tapproxy", __version__)
            for s in ss.spans:
                got[int.from_bytes(s.span_id, "big")] = (service["service.name"], s)
    assert set(got) == {s.span_id for s in spans}
    kinds = {"internal": 1, "server": 2, "client": 3}
    for s in spans:
        service, p = got[s.span_id]
        assert service == s.service
        assert int.from_bytes(p.trace_id, "big") == s.trace_id
        assert len(p.trace_id) == 16 and len(p.span_id) == 8
        assert int.from_bytes(p.parent_span_id, "big") == (s.parent_span_id or 0)
        assert (p.name, p.kind) == (s.name, kinds[s.kind])
        assert (p.start_time_unix_nano, p.end_time_unix_nano) == (s.start, s.end)
        assert p.status.code == {"unset": 0, "error": 2}[s.status]
        attrs = {}
        for kv in p.attributes:
            v = kv.value
            attrs[kv.key] = getattr(v, v.WhichOneof("value"))
        assert attrs == s.attributes
    client = got[span_id_for("o1", "client")][1]
    assert (client.name, client.kind, client.start_time_unix_nano,
            client.end_time_unix_nano) == ("GET", 3, T0 + 10 * MS, T0 + 60 * MS)
    assert client.parent_span_id == span_id_for("t1", "server").to_bytes(8, "big")


def test_export_rejected_by_the_endpoint_is_a_spans_error(collector) -> None:
    svc, received, answer = collector
    answer["status"] = 400  # not retried by the exporter
    exporter = OtlpHttpExporter(svc.url, timeout=5)
    try:
        with pytest.raises(SpansError, match=re.escape(f"{svc.url}/v1/traces")):
            exporter.export(synthesized())
    finally:
        exporter.close()
    assert len(received) == 1
    assert exporter.exported == 0


def test_export_to_a_port_where_nothing_listens_is_a_spans_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    exporter = OtlpHttpExporter(url, timeout=2)
    try:
        with pytest.raises(SpansError, match="is a collector listening there"):
            exporter.export(synthesized())
    finally:
        exporter.close()
