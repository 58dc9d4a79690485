"""The recorder addon: observes every flow faithfully and hands records to the writer.

It never blocks mitmproxy's event loop: hooks build plain records and queue them;
encoding, redaction and file writes happen on the writer thread. Nothing is kept
per exchange once it is queued; live figures are running counts. This module holds
the hooks; naming, routing, TLS, WebSockets, tunnels, live spans and the control API
are in their own modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mitmproxy import connection, ctx, http, tls

from tapproxy.analysis.metrics import Metrics
from tapproxy.capture.model import ErrorInfo, SpanBatch, TestCase
from tapproxy.capture.redact import Redactor
from tapproxy.capture.routes import RouteTable
from tapproxy.errors import CaptureError
from tapproxy.proxy import tls as tls_hooks
from tapproxy.proxy import websockets
from tapproxy.proxy.bodies import (
    BodyTap,
    GrpcTap,
    is_grpc,
    request_streams,
    response_tap,
)
from tapproxy.proxy.capture_file import open_writer
from tapproxy.proxy.control_api import ControlEndpoints
from tapproxy.proxy.convert import (
    connect_failure,
    exchange_from_flow,
    exchange_from_tls_failure,
    name_idle_timeout,
)
from tapproxy.proxy.naming import Naming, take_our_headers
from tapproxy.proxy.routing import REFUSED, SELF, Routing
from tapproxy.proxy.tunnels import TunnelLog, host_ignored
from tapproxy.supervisor.caller_lookups import CallerLookups
from tapproxy.supervisor.identity import caller_from_proxy_auth
from tapproxy.supervisor.options import RecordOptions, ReverseSpec, ServiceSpec
from tapproxy.supervisor.testcases import OpenTests

if TYPE_CHECKING:
    from tapproxy.proxy.live_tracing import LiveTracing
    from tapproxy.supervisor.control import ControlServer

__all__ = ["Recorder"]

_META = "tapproxy"  # flow.metadata key: (caller, test, test_source)
_WRITTEN = "tapproxy.written"
_LEFT_OUT = "tapproxy.left_out"  # (caller, test, test_source) of a request to an ignored host


def _warn(line: str) -> None:
    print(f"tapproxy: warning: {line}", file=sys.stderr, flush=True)





class Recorder:
    """mitmproxy addon writing every exchange, test case and WebSocket message to a capture."""

    def __init__(self, opts: RecordOptions, trim_tcp_messages: bool = True) -> None:
        self.options = opts
        self.tests = OpenTests()
        self._routing = Routing(opts)
        self.naming = Naming(opts, self._routing.tunnel_service)
        self._leaves_hosts_out = bool(opts.allow_hosts or opts.ignore_hosts)  # hot path
        self._routes = RouteTable(opts.routes)
        self._redactor = (Redactor(opts.redact_names, opts.redact_headers, opts.redact_json)
                          if opts.redact else None)
        self.writer, header = open_writer(opts, self._routes, self._redactor)
        self.tunnels = TunnelLog(self.naming, self.tests, self.writer, _warn, trim_tcp_messages)
        # The tunnel log's and own connections' hooks are the recorder's own, not nested
        # addons (`self.addons`): mitmproxy would walk into those on every event of every
        # flow, a generator and three lookups per event for hooks that exist only on a few.
        self.tcp_start = self.tunnels.tcp_start
        self.tcp_message = self.tunnels.tcp_message
        self.tcp_end = self.tcp_error = self.tunnels.tcp_end
        self.server_disconnected = self._routing.own_connections.server_disconnected
        self.live: LiveTracing | None = None
        if opts.otlp or opts.inject_traceparent:  # receiving alone needs no live state
            # Imported here: span inference is start-up a recording without spans skips.
            from tapproxy.proxy.live_tracing import LiveTracing

            self.live = LiveTracing(opts, str(header.created), self._routes, self._redactor)
        self._endpoints = ControlEndpoints(opts, self._routing.own,
                                           self._routing.own_connections.came_from_us)
        self.exchanges = 0
        self.errors = 0
        self.metrics = Metrics()  # live per-edge/route/test figures, bounded (GET /metrics)
        self.started = time.time()
        self._done = False
        self.late_records = 0  # records of hooks run after the capture was closed
        # False while services tapproxy starts itself are still coming up: a run whose
        # service never listens must not replace the previous capture either.
        self.publish_when_running = True

    @property
    def processes(self) -> CallerLookups | None:
        """The process lookups, to tell them about services tapproxy started (None if off)."""
        return self.naming.lookups

    @property
    def control(self) -> ControlServer | None:
        return self._endpoints.control

    def add_reverse(self, r: ReverseSpec) -> None:
        """A reverse listener added while running: name its requests and its address."""
        self.naming.add_reverse(r)
        self._routing.targets.add(r)

    def name_service(self, service: ServiceSpec) -> None:
        """Name a callee address from now on (the control API's POST /services)."""
        self.naming.name_service(service)

    def name_process(self, pid: int, name: str, started: float, descendants: bool) -> bool:
        """Name process `pid` as caller and callee, if it is this host's process that
        started at `started` (another PID namespace's pid may be another process here)."""
        from tapproxy.supervisor.processes import same_process

        namer = self.processes
        if namer is None or not same_process(pid, started):
            return False
        namer.add_service(pid, name, descendants)
        return True

    # -- connections ------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        self.naming.client_connected(client)

    def server_connected(self, data) -> None:
        self.naming.server_connected(data)
        self._routing.own_connections.server_connected(data)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self._routing.refuse_own_address(flow):
            return
        # For HTTPS the credentials that name the caller arrive once, on CONNECT, and
        # hold for every request inside that tunnel.
        name = caller_from_proxy_auth(flow.request.headers.get("proxy-authorization"))
        if name:
            self.naming.connected_as(flow.client_conn, name)
        self._routing.connect(flow)

    def next_layer(self, nextlayer) -> None:
        tunnels = self._routing.tunnels
        if tunnels:
            tls_hooks.end_tls_here(nextlayer, tunnels.get(nextlayer.context.client))
        self.tunnels.next_layer(nextlayer)  # after: it notes the layer finally chosen

    # -- requests ---------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow):
        # The first request of a connection waits for its process lookup if that has not
        # finished yet (it started when the connection opened); later ones find it done.
        return self.naming.after_lookup(flow.client_conn, self._requestheaders, flow)

    def _requestheaders(self, flow: http.HTTPFlow) -> None:
        if self._routing.targets and flow.client_conn.proxy_mode.type_name == "regular":
            self._routing.to_own_listener(flow)
        h = flow.request.headers
        auth_name, header_caller, header_test = take_our_headers(h)
        caller = self.naming.caller_of(flow.client_conn, auth_name, header_caller)
        self.naming.called_as(flow.client_conn, caller)  # its name both ways
        test, source = self.tests.attribute(header_test)
        # A refused request gets our answer; mitmproxy cannot also stream its body on.
        refused = flow.request.method != "CONNECT" and self._routing.refuse_own_address(flow)
        if not refused and is_grpc(h):
            # Client- and bidi-streaming calls need each message passed on as it comes;
            # the tap notes when each one arrived.
            flow.request.stream = GrpcTap(self.options.max_body)
        elif not refused and request_streams(flow, self.options.max_body):
            flow.request.stream = BodyTap(self.options.max_body)
        if self._leaves_hosts_out and host_ignored(flow.request.host, flow.request.port):
            # mitmproxy applies its host options to tunnels only; a plain-HTTP request to
            # a host left out is kept out of the exchanges the same way.
            flow.metadata[_LEFT_OUT] = (caller, test, source)
            return
        flow.metadata[_META] = (caller, test, source)
        if self.live is not None:
            self.live.request_started(flow, caller, self.naming.callee(flow).name, test)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # gRPC: as it arrives, each message noted; else SSE, unknown length or long.
        tap = response_tap(flow, self.options.max_body)
        if tap is not None:
            flow.response.stream = tap  # type: ignore[union-attr]

    # -- recording --------------------------------------------------------------------

    def _submit_exchange(self, flow: http.HTTPFlow, connect_error: ErrorInfo | None = None):
        meta = flow.metadata.get(_META)
        if meta is None:  # failed before its headers were complete, or a CONNECT
            meta = (self.naming.caller_of(flow.client_conn), *self.tests.attribute(None))
        caller, test, source = meta
        x = exchange_from_flow(flow, caller, self.naming.settled_callee(flow), test, source)
        if connect_error is not None:
            # The 502 is mitmproxy's own answer, not the server's: record the failure.
            timing = dataclasses.replace(x.timing, response_start=None, response_end=None,
                                         error_at=time.time_ns())
            x = dataclasses.replace(x, response=None, error=connect_error, timing=timing)
        flow.metadata[_WRITTEN] = True
        if self.live is not None:
            self.live.request_done(flow, x)
        self.exchanges += 1
        failed = x.failed
        if failed:
            self.errors += 1
        self.metrics.add(self._routes(x) if self._routes else x, failed)
        return self._submit(x)

    def response(self, flow: http.HTTPFlow):
        if SELF in flow.metadata:
            return None
        if _LEFT_OUT in flow.metadata:
            return self._submit_left_out(flow)
        return self.naming.after_lookup(flow.server_conn, self._submit_exchange, flow)

    def http_connect_error(self, flow: http.HTTPFlow):
        # mitmproxy answers a failed CONNECT itself and then calls no response hook: one
        # we refused (our own address), or one that could not reach its server (refused,
        # unresolvable, timed out), which would otherwise leave no record at all.
        error = None if flow.metadata.get(REFUSED) else connect_failure(flow)
        if error is None:  # our 403, or an answer another addon chose (407 under mitmdump)
            return self._submit_exchange(flow)
        q = flow.request
        if host_ignored(q.host, q.port):
            flow.metadata[_LEFT_OUT] = (self.naming.caller_of(flow.client_conn),
                                        *self.tests.attribute(None))
            return self._submit_left_out(flow, error)
        return self._submit_exchange(flow, error)

    def _submit_left_out(self, flow: http.HTTPFlow, error: ErrorInfo | None = None):
        caller, test, source = flow.metadata[_LEFT_OUT]
        flow.metadata[_WRITTEN] = True
        return self._submit(self.tunnels.left_out(flow, caller, test, source, error))

    def error(self, flow: http.HTTPFlow):
        if flow.metadata.get(_WRITTEN) or SELF in flow.metadata:
            return None  # a WebSocket that failed after its handshake: see websocket_end
        name_idle_timeout(flow)
        if _LEFT_OUT in flow.metadata:
            return self._submit_left_out(flow)
        return self.naming.after_lookup(flow.server_conn, self._submit_exchange, flow)

    def tls_failed_client(self, data: tls.TlsData):
        """The client refused the handshake (it does not trust our CA, or spoke no TLS).

        No HTTP flow exists then: the record is the tunnel itself, a CONNECT (or, on a
        reverse listener, the connection) that failed with kind `tls`. A failed handshake
        with the server needs nothing here: the request that needed it fails with that
        message and is recorded as such.
        """
        conn, host, port = tls_hooks.refused_handshake(data)
        # Which client refused (curl, java…) is worth its process lookup's wait.
        return self.naming.after_lookup(conn, self._record_tls_failure, conn, host, port)

    def _record_tls_failure(self, conn: connection.Client, host: str, port: int):
        x = exchange_from_tls_failure(conn, host, port, self.naming.caller_of(conn),
                                      self.naming.callee_at(conn, host, port),
                                      *self.tests.attribute(None))
        self.exchanges += 1
        self.errors += 1
        return self._submit(x)

    def websocket_message(self, flow: http.HTTPFlow):
        if _LEFT_OUT in flow.metadata:
            return None  # a WebSocket to a host left out: no exchange to attach it to
        return self._submit(websockets.websocket_message(flow))

    def websocket_end(self, flow: http.HTTPFlow):
        if _LEFT_OUT in flow.metadata:
            return None
        return self._submit(websockets.websocket_end(flow))

    def test_closed(self, case: TestCase):
        """Record a test case the control API closed (awaitable when the queue is full)."""
        if self.live is not None:
            self.live.test_ended(case)
        return self._submit(case)

    def _span_batch(self, batch: SpanBatch):
        if self.live is not None:
            self.live.received(batch)
        return self._submit(batch)

    # -- lifecycle --------------------------------------------------------------------

    async def start_control(self) -> None:
        """Serve the control API if asked (ProxyError if its port cannot be bound)."""
        await self._endpoints.start_control(self)

    async def start_receiver(self) -> None:
        """Accept OTLP spans from instrumented services if asked (ProxyError if unbound)."""
        await self._endpoints.start_receiver(self._span_batch)

    async def running(self) -> None:
        if self.naming.lookups is not None:  # the helper, ready before the first caller
            self.naming.lookups.open()
        # Already done when embedded; needed under mitmdump -s.
        await self.start_control()
        await self.start_receiver()
        servers = ctx.master.addons.get("proxyserver").servers
        if self.publish_when_running and not any(s.last_exception is not None
                                                 for s in servers):
            self.writer.publish()

    def _submit(self, record):
        """The writer's submit, except once the capture is closed: a hook of a connection
        still closing after `done` (a client's keep-alive at Ctrl-C) has nothing to write
        to; its record is counted as lost rather than raised as an addon error."""
        if self.writer.closed:
            self.late_records += 1
            return None
        return self.writer.submit(record)

    async def done(self) -> None:
        if self._done:
            return
        self._done = True
        if self.naming.lookups is not None:
            self.naming.lookups.close()
        await self._endpoints.stop()
        if self.live is not None:
            self.live.close()
        if not self.writer.published:
            self.writer.discard()  # never started: nothing was recorded, nothing replaced
            return
        for record in [*self.tunnels.close_all(), *self.tests.close_all()]:
            pending = self.writer.submit(record)
            if pending is not None:
                await pending
        # A write failure was reported on stderr when it happened; counted in records_lost.
        with contextlib.suppress(CaptureError):
            self.writer.close()

    def stats(self) -> dict:
        return {
            "exchanges": self.exchanges,
            "errors": self.errors,
            "tunnels": self.tunnels.count,
            "records_written": self.writer.records_written,
            "bytes_written": self.writer.bytes_written,
            "records_lost": self.writer.records_lost,
            "write_error": self.writer.failure,
            "open_tests": self.tests.names(),
            "uptime_s": round(time.time() - self.started, 3),
            "capture": str(Path(self.options.output).resolve()),
            "listen": str(self.options.listen),
        }
