"""The control API: a small HTTP server for test harnesses (open/close test cases, flush).

    POST /tests/start  {"name": "..."}                     201, 409 if already open
    POST /tests/end    {"name": "...", "outcome": "passed"} 200, 404 if not open
    GET  /tests        {"open": [...]}
    POST /flush        every record so far is in the file   {"records": N}
    GET  /stats        live aggregates                      {"exchanges": N, "errors": N, ...}

Once the capture cannot be written (a full disk), /flush and /tests/end answer 507
(disk full) or 500 with {"error": "...", "records": N, "records_lost": N}.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from tapproxy.errors import CaptureError
from tapproxy.proxy.testcases import TestCaseError

if TYPE_CHECKING:
    from tapproxy.proxy.recorder import Recorder

__all__ = ["ControlServer"]


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be a JSON object") from None
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise web.HTTPBadRequest(text='body must be a JSON object with a "name" string')
    return body


class ControlServer:
    """Serves the control API for one recorder on the proxy's own event loop."""

    def __init__(self, recorder: Recorder, host: str, port: int) -> None:
        self._recorder = recorder
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/tests/start", self._start),
            web.post("/tests/end", self._end),
            web.get("/tests", self._list),
            web.post("/flush", self._flush),
            web.get("/stats", self._stats),
        ])
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _start(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            self._recorder.tests.open(body["name"])
        except TestCaseError as e:
            return web.json_response({"error": str(e)}, status=409)
        return web.json_response({"open": body["name"]}, status=201)

    async def _end(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        outcome = body.get("outcome")
        if outcome is not None and not isinstance(outcome, str):
            raise web.HTTPBadRequest(text='"outcome" must be a string')
        try:
            case = self._recorder.tests.close(body["name"], outcome if outcome else None)
        except TestCaseError as e:
            return web.json_response({"error": str(e)}, status=404)
        pending = self._recorder.test_closed(case)
        if pending is not None:
            await pending
        if self._recorder.writer.failure is not None:
            return self._write_failed(closed=case.name)
        return web.json_response({"closed": case.name, "outcome": case.outcome})

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"open": self._recorder.tests.names()})

    async def _flush(self, request: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(self._recorder.writer.flush)
        except CaptureError:
            return self._write_failed()
        return web.json_response({"records": self._recorder.writer.records_written})

    def _write_failed(self, **extra) -> web.Response:
        """The capture stopped growing: 507 for a full disk, else 500, saying why in JSON."""
        w = self._recorder.writer
        return web.json_response(
            {"error": w.failure, "records": w.records_written, "records_lost": w.records_lost,
             **extra},
            status=507 if w.disk_full else 500)

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._recorder.stats())
