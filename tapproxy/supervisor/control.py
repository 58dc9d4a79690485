"""The control API: a small HTTP server for test harnesses (open/close test cases, flush).

    POST /tests/start  {"name": "..."}                     201, 409 if already open
    POST /tests/end    {"name": "...", "outcome": "passed"} 200, 404 if not open;
                       the answer counts the test's `requests`
    POST /services     {"name": "...", "address": "HOST:PORT"}  name a callee from now on
                       {"name": "...", "pid": N, "started": T}  name a process of this
                       host (T: its start time, seconds since the epoch, which tells it
                       from another host's or PID namespace's): 201, 409 if not here
                       (or {"name": "...", "host": "HOST"}: at any port)
    GET  /tests        {"open": [...]}
    GET  /tests/exchanges?test=NAME  the test's records so far, as a capture of their own
                       (application/vnd.tapproxy.capture: the .tap framing), for a
                       harness that cannot read the capture file (another host)
    POST /flush        every record so far is in the file   {"records": N}
    GET  /stats        live aggregates                      {"exchanges": N, "errors": N, ...}
    GET  /metrics      per edge, route and test: count, errors, latency percentiles, bytes
                       (the JSON of `tapproxy stats --json`); `?state=1`: the figures
                       as mergeable state (how `--workers N` adds up its workers')

Once the capture cannot be written (a full disk), /flush and /tests/end answer 507
(disk full) or 500 with {"error": "...", "records": N, "records_lost": N}.

Every answer is JSON, errors too: {"error": "..."}. A web page must not drive it (any page
can POST to localhost), so a request with a body must say `Content-Type:
application/json` (a cross-site form cannot, without a CORS preflight nobody answers;
one without a body may say anything),
and a request whose `Origin` is not this API's own loopback address is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp import web

from tapproxy.analysis.metrics import Metrics
from tapproxy.capture.model import TestCase
from tapproxy.errors import CaptureError, UsageError
from tapproxy.supervisor.options import ServiceSpec, parse_address
from tapproxy.supervisor.testcases import OpenTests, TestCaseError

__all__ = ["CAPTURE_TYPE", "MAX_BODY", "MAX_NAME", "ControlServer", "Controlled"]

CAPTURE_TYPE = "application/vnd.tapproxy.capture"

MAX_BODY = 64 * 1024  # a start/end body is a name and an outcome: 64 KiB is plenty
MAX_NAME = 1024  # bytes of UTF-8, for test names and outcomes


class CaptureState(Protocol):
    """The capture writer, as far as the control API reads and flushes it."""

    @property
    def records_written(self) -> int: ...

    @property
    def records_lost(self) -> int: ...

    @property
    def failure(self) -> str | None: ...

    @property
    def disk_full(self) -> bool: ...

    def flush(self) -> None:
        """Block until every record so far is in the file (CaptureError if it cannot be)."""
        ...


class Controlled(Protocol):
    """What the control API drives: the recorder, seen through what the API needs."""

    tests: OpenTests
    writer: CaptureState
    metrics: Metrics  # live per-edge, route and test figures

    def test_closed(self, case: TestCase) -> Awaitable[object] | None: ...

    def name_service(self, service: ServiceSpec) -> None: ...

    def name_process(self, pid: int, name: str, started: float,
                     descendants: bool) -> bool: ...

    def stats(self) -> dict: ...


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ControlServer:
    """Serves the control API for one recorder on the proxy's own event loop."""

    def __init__(self, target: Controlled, host: str, port: int,
                 from_proxy: Callable[[tuple | None, tuple | None], bool] | None = None,
                 ) -> None:
        """`from_proxy(peer, sockname)`: the connection was opened by the proxy."""
        self._target = target
        self._from_proxy = from_proxy
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.add_routes([
            web.post("/tests/start", self._start),
            web.post("/tests/end", self._end),
            web.get("/tests", self._list),
            web.get("/tests/exchanges", self._test_records),
            web.post("/services", self._service),
            web.post("/flush", self._flush),
            web.get("/stats", self._stats),
            web.get("/metrics", self._metrics),
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

    def _own_origin(self, origin: str) -> bool:
        parts = urlsplit(origin)
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        return (parts.scheme == "http" and parts.hostname is not None
                and _is_loopback(parts.hostname) and port == self.port)

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        transport = request.transport
        if self._from_proxy is not None and transport is not None and self._from_proxy(
                transport.get_extra_info("peername"), transport.get_extra_info("sockname")):
            # Forwarded by the proxy under a name its own check did not recognise (a
            # DNS alias of loopback): anything that can use the proxy would drive this.
            return _error(403, "refused: this request came through the proxy; the "
                               "control API takes requests sent to it directly only")
        origin = request.headers.get("Origin")
        if origin is not None and not self._own_origin(origin):
            return _error(403, f"refused: a request from the web page at {origin!r}; the "
                               "control API takes requests without Origin (curl, test "
                               "harnesses) or from its own loopback address only")
        # Only a body has a type to check: aiohttp's bodiless post() still sends one.
        ctype = request.headers.get("Content-Type")
        if request.body_exists and request.content_type != "application/json":
            return _error(415, f"the control API takes application/json only, not "
                               f"{ctype or 'a body without Content-Type'}")
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return _error(e.status, e.text or e.reason)

    async def _json_body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # a deep `[[[[…` is not a stack to blow
            raise web.HTTPBadRequest(text="body must be a JSON object") from None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            raise web.HTTPBadRequest(text='body must be a JSON object with a "name" string')
        for field in ("name", "outcome"):
            value = body.get(field)
            if isinstance(value, str) and len(value.encode("utf-8", "replace")) > MAX_NAME:
                raise web.HTTPBadRequest(text=f'"{field}" is longer than {MAX_NAME} bytes')
        return body

    async def _start(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        started = body.get("started")  # a supervisor's, the same for all its workers
        if started is not None and (type(started) is not int or started < 0):
            raise web.HTTPBadRequest(text='"started" must be nanoseconds since the epoch')
        try:
            self._target.tests.open(body["name"], started)
        except TestCaseError as e:
            return _error(409, str(e))
        return web.json_response({"open": body["name"]}, status=201)

    async def _end(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        outcome = body.get("outcome")
        if outcome is not None and not isinstance(outcome, str):
            raise web.HTTPBadRequest(text='"outcome" must be a string')
        try:
            case, requests = self._target.tests.end(body["name"], outcome if outcome else None)
        except TestCaseError as e:
            return _error(404, str(e))
        pending = self._target.test_closed(case)
        if pending is not None:
            await pending
        if self._target.writer.failure is not None:
            return self._write_failed(closed=case.name)
        return web.json_response({"closed": case.name, "outcome": case.outcome,
                                  "requests": requests})

    async def _service(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if "pid" in body:
            return self._process(body)
        address = body.get("address")
        host = body.get("host")
        if address is None and isinstance(host, str) and host.strip():  # any port
            self._target.name_service(ServiceSpec(body["name"], host.strip(), None))
            return web.json_response({"service": body["name"], "host": host.strip()},
                                     status=201)
        try:
            if not isinstance(address, str):
                raise UsageError('"address" must be a "HOST:PORT" string '
                                 '(or "host" a HOST string, for any port)')
            spec = parse_address(address, "address")
        except UsageError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        self._target.name_service(ServiceSpec(body["name"], spec.host, spec.port))
        return web.json_response({"service": body["name"], "address": str(spec)}, status=201)

    def _process(self, body: dict) -> web.Response:
        pid, started, descendants = body["pid"], body.get("started"), body.get("descendants",
                                                                              False)
        if (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0
                or not isinstance(started, int | float) or isinstance(started, bool)
                or not isinstance(descendants, bool)):
            raise web.HTTPBadRequest(text='"pid" must be a process id, "started" its start '
                                          'time in seconds, "descendants" true or false')
        if not self._target.name_process(pid, body["name"], float(started), descendants):
            return _error(409, f"process {pid} started at {started} is not one of this "
                               "host's (another host or PID namespace, or gone)")
        return web.json_response({"service": body["name"], "pid": pid}, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"open": self._target.tests.names()})

    async def _test_records(self, request: web.Request) -> web.Response:
        test = request.query.get("test")
        if not test:
            raise web.HTTPBadRequest(text="name the test: /tests/exchanges?test=NAME")
        try:
            await asyncio.to_thread(self._target.writer.flush)
        except CaptureError:
            return self._write_failed()
        from tapproxy.capture.excerpt import records_of_test  # rarely asked: not at start-up

        capture = Path(str(self._target.stats().get("capture", "")))
        try:
            body = await asyncio.to_thread(records_of_test, capture, test)
        except CaptureError as e:
            return _error(500, f"the proxy cannot read its own capture: {e}")
        return web.Response(body=body, content_type=CAPTURE_TYPE)

    async def _flush(self, request: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(self._target.writer.flush)
        except CaptureError:
            return self._write_failed()
        return web.json_response({"records": self._target.writer.records_written})

    def _write_failed(self, **extra) -> web.Response:
        """The capture stopped growing: 507 for a full disk, else 500, saying why in JSON."""
        w = self._target.writer
        return web.json_response(
            {"error": w.failure, "records": w.records_written, "records_lost": w.records_lost,
             **extra},
            status=507 if w.disk_full else 500)

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._target.stats())

    async def _metrics(self, request: web.Request) -> web.Response:
        from tapproxy.report.stats import metrics_json  # the report side: not at start-up

        if request.query.get("state"):
            return web.json_response(self._target.metrics.state())
        return web.json_response(metrics_json(self._target.metrics))
