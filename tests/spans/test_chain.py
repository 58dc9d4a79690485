"""End to end: A → B → C and A → D, where A and C are instrumented with the OpenTelemetry
SDK (sending OTLP to the proxy) and B and D are not. The synthesized spans must join the
real ones into one tree per test, and say how each parent was found."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import requests
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tapproxy.spans.stream import spans_of_capture
from tapproxy.supervisor.options import Address, ServiceSpec
from tests.conftest import free_port, run_cli


def _tracer(name: str, receiver: Address) -> tuple[trace.Tracer, TracerProvider]:
    provider = TracerProvider(resource=Resource({"service.name": name}))
    exporter = OTLPSpanExporter(endpoint=f"http://{receiver}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test-instrumentation"), provider


class Chain:
    """The four services; A and C instrumented, B and D not."""

    def __init__(self, services, receiver: Address) -> None:
        self.tracer_a, self.provider_a = _tracer("A", receiver)
        self.tracer_c, self.provider_c = _tracer("C", receiver)
        self.proxy = None  # set by start(): the services call through it at request time
        self.d = services.start("D", self._plain("d"))
        self.c = services.start("C", self._c_app())
        self.b = services.start("B", self._b_app())
        self.a = services.start("A", self._a_app())

    def start(self, start_proxy, **options):
        """Start the proxy with the services named by address, as --service would."""
        named = tuple(ServiceSpec(s.name, "127.0.0.1", s.port)
                      for s in (self.a, self.b, self.c, self.d))
        self.proxy = start_proxy(services=named, **options)
        return self.proxy

    def _plain(self, word: str) -> web.Application:
        async def handler(request):
            return web.json_response({word: True})

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        return app

    def _c_app(self) -> web.Application:
        async def handler(request):
            ctx = propagate.extract(dict(request.headers))
            with self.tracer_c.start_as_current_span(
                    f"GET {request.path}", context=ctx, kind=trace.SpanKind.SERVER):
                await asyncio.sleep(0.005)
                return web.json_response({"c": True})

        app = web.Application()
        app.router.add_get("/c", handler)
        return app

    def _b_app(self) -> web.Application:
        # Uninstrumented: calls C through the proxy and forwards no trace context.
        async def handler(request):
            async with aiohttp.ClientSession(proxy=self.proxy.url_as("B")) as s:
                await asyncio.sleep(float(request.query.get("delay", "0")))
                async with s.get(f"{self.c.url}/c?for={request.query.get('i', '')}") as r:
                    await r.read()
            return web.json_response({"b": True})

        app = web.Application()
        app.router.add_get("/b", handler)
        return app

    def _a_app(self) -> web.Application:
        async def call(session, url):
            with self.tracer_a.start_as_current_span(f"GET {url.rsplit('/', 1)[1]}",
                                                     kind=trace.SpanKind.CLIENT):
                headers: dict[str, str] = {}
                propagate.inject(headers)
                async with session.get(url, headers=headers) as r:
                    await r.read()

        async def handler(request):
            ctx = propagate.extract(dict(request.headers))
            with self.tracer_a.start_as_current_span("GET /a", context=ctx,
                                                     kind=trace.SpanKind.SERVER):
                async with aiohttp.ClientSession(proxy=self.proxy.url_as("A")) as s:
                    await call(s, f"{self.b.url}/b")
                    await call(s, f"{self.d.url}/d")
            return web.json_response({"a": True})

        app = web.Application()
        app.router.add_get("/a", handler)
        return app

    def run_test(self, name: str) -> None:
        ctl = self.proxy.control_url
        requests.post(f"{ctl}/tests/start", json={"name": name}, timeout=10)
        r = requests.get(f"{self.a.url}/a", proxies={"http": self.proxy.url_as("tests")},
                         timeout=20)
        assert r.status_code == 200
        requests.post(f"{ctl}/tests/end", json={"name": name, "outcome": "passed"}, timeout=10)
        self.provider_a.force_flush()
        self.provider_c.force_flush()


@pytest.fixture
def receiver() -> Address:
    return Address("127.0.0.1", free_port())


def _tree(spans):
    """{span_id: span} and a way to walk parent links by service/kind."""
    return {s.span_id: s for s in spans}


def _only(spans, **want):
    found = [s for s in spans if all(getattr(s, k) == v for k, v in want.items())]
    assert len(found) == 1, (want, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


def test_injected_context_joins_real_and_synthesized_spans_into_one_tree(
        start_proxy, services, receiver):
    chain = Chain(services, receiver)
    proxy = chain.start(start_proxy, otlp_receive=receiver, inject_traceparent=True)
    chain.run_test("test_chain")
    proxy.stop()

    [group] = [g for g in spans_of_capture(proxy.capture) if g.test == "test_chain"]
    spans = group.spans
    by_id = _tree(spans)
    assert len({s.trace_id for s in spans}) == 1, "one trace for the whole test"

    test = _only(spans, kind="internal", service="tests")
    assert test.parent_span_id is None and test.attributes["test.case.result.status"] == "pass"
    to_a = _only(spans, kind="client", service="tests")
    assert to_a.parent_span_id == test.span_id and to_a.synthesized
    assert to_a.attributes["tapproxy.parent_inference"] == "root"

    # A's own server span (it received the injected traceparent) replaces the synthesized one.
    a_server = _only(spans, kind="server", service="A")
    assert not a_server.synthesized and a_server.parent_span_id == to_a.span_id
    a_to_b = _only(spans, kind="client", service="A", name="GET b")
    a_to_d = _only(spans, kind="client", service="A", name="GET d")
    assert not a_to_b.synthesized and a_to_b.parent_span_id == a_server.span_id

    # B and D have no instrumentation: their server spans are synthesized under A's calls.
    b_server = _only(spans, kind="server", service="B")
    assert b_server.synthesized and b_server.parent_span_id == a_to_b.span_id
    assert b_server.attributes["tapproxy.parent_inference"] == "header"
    assert b_server.attributes["url.path"] == "/b"
    assert b_server.attributes["http.response.status_code"] == 200
    d_server = _only(spans, kind="server", service="D")
    assert d_server.parent_span_id == a_to_d.span_id
    # No client span was synthesized where A (instrumented) made the call itself.
    assert not [s for s in spans if s.kind == "client" and s.service == "A" and s.synthesized]

    # B's call to C: inferred from timing, and B is reported for dropping the context.
    b_to_c = _only(spans, kind="client", service="B")
    assert b_to_c.synthesized and b_to_c.parent_span_id == b_server.span_id
    assert b_to_c.attributes["tapproxy.parent_inference"] == "timing"
    assert b_to_c.attributes["http.request.method"] == "GET"
    assert b_to_c.attributes["url.full"].startswith(f"{chain.c.url}/c")
    assert [e.name for e in b_to_c.events] == ["tapproxy.context_lost"]
    [finding] = group.findings
    assert finding.kind == "context_lost" and finding.service == "B"
    assert "service B drops trace context" in finding.message

    # C received the traceparent tapproxy injected: its real server span hangs under B's call.
    c_server = _only(spans, kind="server", service="C")
    assert not c_server.synthesized and c_server.parent_span_id == b_to_c.span_id

    # Spans keep the exchanges' own times.
    assert to_a.start <= a_server.start <= b_server.start <= b_to_c.start <= c_server.start
    assert all(by_id[s.parent_span_id].start <= s.start for s in spans if s.parent_span_id)


def test_without_injection_the_lost_context_is_reported(start_proxy, services, receiver):
    chain = Chain(services, receiver)
    proxy = chain.start(start_proxy, otlp_receive=receiver)
    chain.run_test("test_chain")
    proxy.stop()
    groups = list(spans_of_capture(proxy.capture))
    [group] = [g for g in groups if g.test == "test_chain"]
    spans = group.spans
    b_to_c = _only(spans, kind="client", service="B")
    b_server = _only(spans, kind="server", service="B")
    assert b_to_c.parent_span_id == b_server.span_id
    assert b_to_c.trace_id == b_server.trace_id
    assert [f.service for f in group.findings] == ["B"]
    # C started a trace of its own: no synthesized span duplicates its server span there,
    # and tapproxy's synthesized server span for C stays in the joined trace.
    c_synth = _only(spans, kind="server", service="C")
    assert c_synth.synthesized and c_synth.parent_span_id == b_to_c.span_id
    c_real = [s for g in groups for s in g.spans if s.service == "C" and not s.synthesized]
    assert len(c_real) == 1 and c_real[0].parent_span_id is None


def test_concurrent_calls_through_b_get_right_or_explicitly_ambiguous_parents(
        start_proxy, services, receiver):
    chain = Chain(services, receiver)
    proxy = chain.start(start_proxy, otlp_receive=receiver)

    async def burst():
        async with aiohttp.ClientSession(proxy=proxy.url_as("tests")) as s:
            async def one(i: int):
                # Staggered delays make B's calls overlap several of its incoming requests.
                async with s.get(f"{chain.b.url}/b?i={i}&delay={0.002 * (i % 5)}") as r:
                    assert r.status == 200

            await asyncio.gather(*(one(i) for i in range(12)))

    asyncio.run(burst())
    proxy.stop()
    spans = [s for g in spans_of_capture(proxy.capture) for s in g.spans]
    servers = {s.span_id: s for s in spans if s.kind == "server" and s.service == "B"}
    calls = [s for s in spans if s.kind == "client" and s.service == "B"]
    assert len(calls) == 12 and len(servers) == 12
    seen = {"timing": 0, "ambiguous": 0}
    for call in calls:
        i = call.attributes["url.full"].rsplit("for=", 1)[1]
        right = next(s.span_id for s in servers.values()
                     if s.attributes.get("url.query", "").startswith(f"i={i}&"))
        how = call.attributes["tapproxy.parent_inference"]
        seen[how] += 1
        if how == "timing":
            assert call.parent_span_id == right, "a single candidate must be the right one"
        else:
            assert how == "ambiguous"
            assert right in {call.parent_span_id, *(ln.span_id for ln in call.links)}
            assert call.links, "an ambiguous parent links the other candidates"
    assert seen["ambiguous"] > 0, "the burst should have produced overlapping requests"


def test_live_export_and_spans_command_reach_a_real_otlp_endpoint(
        start_proxy, services, receiver, loop_thread):
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        received.append(msg)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    backend = services.start("backend", app)
    chain = Chain(services, receiver)
    proxy = chain.start(start_proxy, otlp_receive=receiver, inject_traceparent=True,
                        otlp=backend.url)
    chain.run_test("test_live")
    proxy.stop()

    def names(msgs):
        return {(rs.resource.attributes[0].value.string_value, span.name)
                for m in msgs for rs in m.resource_spans for ss in rs.scope_spans
                for span in ss.spans}

    live = names(received)
    assert ("tests", "test_live") in live and ("B", "GET") in live  # synthesized
    assert ("A", "GET /a") in live and ("C", "GET /c") in live  # forwarded from A and C
    received.clear()
    out = run_cli("spans", proxy.capture, "--otlp", backend.url, "--out",
                  proxy.capture.with_suffix(".json"))
    assert out.returncode == 0, out.stderr
    assert names(received) == live
    lines = proxy.capture.with_suffix(".json").read_text().splitlines()
    doc = json.loads(lines[0])
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
    assert isinstance(span["kind"], int)
