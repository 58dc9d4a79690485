"""Spans while recording: the same synthesis as `tapproxy spans`, fed from live flows.

The only live state is the set of requests in flight per service (what a call that starts
now could be nested in): it shrinks as exchanges complete, so it never grows with the
length of a recording. Spans go to the SDK's BatchSpanProcessor, whose own thread
exports them: nothing here waits on the network on mitmproxy's event loop.
"""

from __future__ import annotations

import time

from tapproxy.capture.model import Exchange, Party, SpanBatch, TestCase
from tapproxy.spans.context import format_traceparent, parse_traceparent, span_id_for
from tapproxy.spans.infer import Candidate, Synthesizer
from tapproxy.spans.model import Span

__all__ = ["LiveSpans"]


class LiveSpans:
    """Decides each call's trace at request start; exports its spans when it completes."""

    def __init__(self, salt: str, otlp_url: str | None, inject: bool) -> None:
        self._synth = Synthesizer(salt)
        self._inject = inject
        self._in_flight: dict[str, dict[str, Candidate]] = {}  # service → exchange id → …
        self._instrumented: set[str] = set()  # services that sent spans of their own
        self._processor = None
        if otlp_url:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            from tapproxy.spans.export import sdk_exporter

            self._processor = BatchSpanProcessor(sdk_exporter(otlp_url))

    def request_started(self, flow_id: str, caller: Party, callee: str, test: str | None,
                        traceparent: str | None) -> tuple[list[Candidate], str | None]:
        """(the candidates this call may be nested in, a traceparent to inject or None)."""
        start = time.time_ns()
        known = caller.source != "peer"
        candidates = list(self._in_flight.get(caller.name, {}).values()) if known else []
        trace_id, _, _, _, _ = self._synth.decide(flow_id, test, start, candidates)
        tp = parse_traceparent(traceparent)
        inject = None
        if tp is None and self._inject:
            inject = format_traceparent(trace_id, span_id_for(flow_id, "client"))
            tp_trace = trace_id
        else:
            tp_trace = tp.trace_id if tp else trace_id
        # As a candidate parent its end is unknown yet: it encloses whatever starts now.
        me = Candidate(flow_id, start, None, tp_trace, span_id_for(flow_id, "server"),
                       tp is not None or inject is not None)
        self._in_flight.setdefault(callee, {})[flow_id] = me
        return candidates, inject

    def request_done(self, x: Exchange, candidates: list[Candidate]) -> None:
        services = self._in_flight.get(x.callee.name)
        if services is not None:
            services.pop(x.id, None)
            if not services:
                del self._in_flight[x.callee.name]
        if self._processor is None:
            return
        spans, _, _ = self._synth.exchange(x, candidates)
        # A service that reports its own spans has its own server span for a request that
        # carried context: a synthesized one would be a duplicate in the backend.
        if x.request.headers.get("traceparent") and x.callee.name in self._instrumented:
            spans = [s for s in spans if s.kind != "server"]
        self._emit(spans)

    def test_ended(self, case: TestCase) -> None:
        if self._processor is not None:
            self._emit([self._synth.test_span(case)])

    def received(self, batch: SpanBatch) -> None:
        """Spans an instrumented service sent: forwarded, and its name remembered."""
        from tapproxy.spans.otlp import decode_batch

        spans = decode_batch(batch)
        self._instrumented.update(s.service for s in spans)
        if self._processor is not None:
            self._emit(spans)

    def _emit(self, spans: list[Span]) -> None:
        from tapproxy.spans.otlp import to_readable

        for span in to_readable(spans):
            self._processor.on_end(span)  # a queue append; the processor's thread exports

    def close(self) -> None:
        if self._processor is not None:
            self._processor.shutdown()  # exports what is queued
