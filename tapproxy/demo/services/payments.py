"""The payments service (aiohttp), instrumented with the OpenTelemetry SDK: it sends its
own spans over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT (the proxy's receiver in the demo)
and continues the trace of the `traceparent` its requests carry. `python -m … PORT [HOST]`."""

from __future__ import annotations

import sys

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

DECLINED_CARD = "4000-0000-0000-0119"

# Simple, not batched: each span is sent as it ends, before the response leaves, so the
# spans are at the receiver when the test is over.
_provider = TracerProvider(resource=Resource({"service.name": "payments"}))
_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
_tracer = _provider.get_tracer("tapproxy.demo.payments")


async def charge(request: web.Request) -> web.Response:
    context = propagate.extract(dict(request.headers))
    with _tracer.start_as_current_span("POST /charges", context=context,
                                       kind=trace.SpanKind.SERVER) as span:
        body = await request.json()
        span.set_attributes({"http.request.method": "POST", "http.route": "/charges",
                             "url.path": "/charges"})
        with _tracer.start_as_current_span("card processor") as processor:
            declined = body.get("card") == DECLINED_CARD
            processor.set_attribute("payments.card.declined", declined)
        if declined:
            print("ERROR card processor unavailable for card ending 0119",
                  file=sys.stderr, flush=True)
            span.set_attribute("http.response.status_code", 500)
            span.set_status(trace.StatusCode.ERROR, "card processor unavailable")
            return web.json_response({"error": "card processor unavailable"}, status=500)
        span.set_attribute("http.response.status_code", 201)
        return web.json_response({"charge_id": "ch_1001", "amount": body["amount"]},
                                 status=201)


def main(port: int, host: str = "127.0.0.1") -> None:
    app = web.Application()
    app.router.add_post("/charges", charge)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:3])
