"""An OTLP/HTTP traces endpoint on the proxy: instrumented services send their spans here.

    POST /v1/traces   application/x-protobuf or application/json (gzip allowed)

Batches are checked, then stored in the capture as they arrived, so `tapproxy spans`
can merge them with the synthesized ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from tapproxy.capture.model import SpanBatch
from tapproxy.errors import ProxyError, TapproxyError
from tapproxy.spans.otlp import parse_request
from tapproxy.supervisor.identity import address_of
from tapproxy.supervisor.options import Address

__all__ = ["OtlpReceiver"]


class OtlpReceiver:
    def __init__(self, address: Address, on_batch: Callable[[SpanBatch], object]) -> None:
        self._address = address
        self._on_batch = on_batch
        self._runner: web.AppRunner | None = None
        self.batches = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._address.host, self._address.port).start()
        except OSError as e:
            await self._runner.cleanup()
            reason = "address already in use" if e.errno == 98 else e.strerror or str(e)
            raise ProxyError(f"cannot listen for OTLP on {self._address}: {reason}") from e

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        ctype = request.content_type or "application/x-protobuf"
        if ctype not in ("application/x-protobuf", "application/json"):
            return web.Response(status=415, text=f"unsupported content type {ctype}")
        # aiohttp has already undone a gzip/deflate Content-Encoding (exporters with
        # OTEL_EXPORTER_OTLP_COMPRESSION=gzip send one).
        payload = await request.read()
        try:
            parse_request(payload, ctype)
        except TapproxyError as e:
            return web.Response(status=400, text=str(e))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        pending = self._on_batch(SpanBatch(time.time_ns(), ctype, payload, address_of(peer)))
        if pending is not None:
            await pending
        self.batches += 1
        # An empty ExportTraceServiceResponse: full success.
        if ctype == "application/json":
            return web.json_response({})
        return web.Response(body=b"", content_type="application/x-protobuf")
