"""Live spans while recording: each request's candidates for a parent, the traceparent
injected where asked, and the span of each exchange as it is written."""

from __future__ import annotations

import dataclasses

from mitmproxy import http

from tapproxy.capture.model import Exchange, Party, SpanBatch, TestCase
from tapproxy.capture.redact import Redactor
from tapproxy.capture.routes import RouteTable
from tapproxy.supervisor.live import LiveSpans
from tapproxy.supervisor.options import RecordOptions

__all__ = ["LiveTracing"]

_LIVE = "tapproxy.live"  # flow.metadata: the candidates a call may be nested in


class LiveTracing:
    """The recorder's side of live spans (only made when spans are exported or injected)."""

    def __init__(self, opts: RecordOptions, created: str, routes: RouteTable,
                 redactor: Redactor | None) -> None:
        self.spans = LiveSpans(created, opts.otlp, opts.inject_traceparent)
        self._routes = routes
        self._redactor = redactor

    def request_started(self, flow: http.HTTPFlow, caller: Party, callee: str,
                        test: str | None) -> None:
        h = flow.request.headers
        candidates, inject = self.spans.request_started(
            flow.id, caller, callee, test, h.get("traceparent"))
        if inject is not None:
            h["traceparent"] = inject
        flow.metadata[_LIVE] = candidates

    def request_done(self, flow: http.HTTPFlow, x: Exchange) -> None:
        if _LIVE in flow.metadata:
            self.spans.request_done(self._view(x), flow.metadata.pop(_LIVE))

    def _view(self, x: Exchange) -> Exchange:
        """What live spans see: the route named, the query masked, as the writer will.

        Live spans carry the URL but no headers or bodies, so masking the target is
        enough here; the full redaction stays on the writer thread.
        """
        if self._routes:
            x = self._routes(x)
        if self._redactor is not None and "?" in x.request.path:
            path = self._redactor.mask_target(x.request.path)
            if path != x.request.path:
                x = dataclasses.replace(x, request=dataclasses.replace(x.request, path=path))
        return x

    def received(self, batch: SpanBatch) -> None:
        self.spans.received(batch)

    def test_ended(self, case: TestCase) -> None:
        self.spans.test_ended(case)

    def close(self) -> None:
        self.spans.close()
