"""The recorder addon: observes every flow faithfully and hands records to the writer.

It never blocks mitmproxy's event loop: hooks build plain records and queue them;
encoding, redaction and file writes happen on the writer thread. Nothing is kept
per exchange once it is queued; live figures are running counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
import weakref
from pathlib import Path

from mitmproxy import connection, ctx, http, tls
from mitmproxy.flow import Error
from mitmproxy.proxy.layers.tls import ServerTLSLayer

from tapproxy.analysis.metrics import Metrics
from tapproxy.capture.format import new_header
from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Party,
    SpanBatch,
    TestCase,
    WebSocketEnd,
    WebSocketMessage,
)
from tapproxy.capture.redact import Redactor
from tapproxy.capture.routes import RouteTable
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError, ProxyError
from tapproxy.proxy.bodies import (
    BodyTap,
    GrpcTap,
    body_of,
    is_grpc,
    request_streams,
    response_streams,
)
from tapproxy.proxy.convert import (
    CALLER_TARGET,
    addressed_by_host,
    classify_error,
    connect_failure,
    exchange_from_flow,
    exchange_from_tls_failure,
)
from tapproxy.proxy.tunnels import TunnelLog, host_ignored
from tapproxy.supervisor.caller_lookups import CallerLookups
from tapproxy.supervisor.control import ControlServer
from tapproxy.supervisor.identity import (
    CalleeNamer,
    OwnListeners,
    address_of,
    caller_from_proxy_auth,
    peer_party,
)
from tapproxy.supervisor.live import LiveSpans
from tapproxy.supervisor.options import Address, RecordOptions, ServiceSpec
from tapproxy.supervisor.own_addresses import OwnAddresses, OwnConnections
from tapproxy.supervisor.processes import SUPPORTED as PROCESS_LOOKUP_SUPPORTED
from tapproxy.supervisor.receiver import OtlpReceiver
from tapproxy.supervisor.testcases import OpenTests

__all__ = ["Recorder"]

log = logging.getLogger(__name__)

CALLER_HEADER = "x-tapproxy-caller"
TEST_HEADER = "x-tapproxy-test"
_META = "tapproxy"  # flow.metadata key: (caller, test, test_source)
_WRITTEN = "tapproxy.written"
_LIVE = "tapproxy.live"
_VIA = "tapproxy.via"  # name of our own reverse listener a forwarded request was meant for
_REFUSED = "tapproxy.refused"
_SELF = "tapproxy.self"  # a request the proxy sent to itself: answered, never recorded
_LOOKUP_WAIT = 2.0  # seconds a connection's first request waits at most for its caller lookup
_LEFT_OUT = "tapproxy.left_out"  # (caller, test, test_source) of a request to an ignored host
# First 11 bytes, lower-cased, of the request headers meant for tapproxy.
_OURS = {b"x-tapproxy-", b"proxy-autho"}  # the candidates a call may be nested in, for live spans


def _reverse_names(opts: RecordOptions) -> dict[str, str]:
    """Reverse mode spec (as mitmproxy echoes it back) → service name."""
    return {reverse_mode(r): r.name for r in opts.reverse}


def reverse_mode(r) -> str:
    return f"reverse:{r.upstream}@{r.listen}"


def mitmproxy_modes(opts: RecordOptions) -> list[str]:
    """The mitmproxy `mode` option for these options: forward listeners, then reverses."""
    return [f"regular@{opts.listen}", *(f"regular@{n.listen}" for n in opts.listeners),
            *(reverse_mode(r) for r in opts.reverse)]


def _warn(line: str) -> None:
    print(f"tapproxy: warning: {line}", file=sys.stderr, flush=True)


def _body_size(m: http.Message) -> int:
    body, whole, _ = body_of(m)
    return len(body) if whole is None else whole


def _name_idle_timeout(flow: http.HTTPFlow) -> None:
    """Say "timed out" where mitmproxy's idle timer, not the client, ended a silent exchange.

    mitmproxy has no upstream read timeout: its `tcp_timeout` closes the idle client
    connection and the flow ends as "Client disconnected.". A client that gives up on
    its own does so before the timer could fire, so the elapsed silence tells them apart.
    """
    e = flow.error
    if e is None or flow.response is not None or e.msg != "Client disconnected.":
        return
    timeout = ctx.options.tcp_timeout
    sc = flow.server_conn
    last = max(t for t in (flow.request.timestamp_end, flow.request.timestamp_start,
                           sc.timestamp_tcp_setup, sc.timestamp_tls_setup) if t is not None)
    if e.timestamp - last >= timeout:
        flow.error = Error(f"timed out: no response within {timeout} s (idle timeout); "
                           f"mitmproxy then said: {e.msg}", e.timestamp)


def _report_write_failure(message: str) -> None:
    # Called once, on the writer thread, the moment the capture stops growing: said at
    # once on stderr (not through logging, which mitmproxy may silence or queue).
    print(f"tapproxy: error: {message}; further records are lost (counted in /stats and "
          "at exit), the proxy goes on forwarding", file=sys.stderr, flush=True)


def _chain(*steps):
    """One writer-thread transform from several (None steps skipped)."""
    steps = [s for s in steps if s is not None]
    if len(steps) <= 1:
        return steps[0] if steps else None

    def run(record):
        for step in steps:
            record = step(record)
        return record

    return run


class Recorder:
    """mitmproxy addon writing every exchange, test case and WebSocket message to a capture."""

    def __init__(self, opts: RecordOptions, trim_tcp_messages: bool = True) -> None:
        self.options = opts
        self.tests = OpenTests()
        self._callees = CalleeNamer(opts.services)
        self._reverse = _reverse_names(opts)
        # Named forward listeners by port: mitmproxy echoes the mode back as it parsed it.
        self._listeners = {n.listen.port: n.name for n in opts.listeners}
        self.tunnels = TunnelLog(self, _warn, trim_tcp_messages)
        self.addons = [self.tunnels]  # mitmproxy registers nested addons' hooks too
        self._leaves_hosts_out = bool(opts.allow_hosts or opts.ignore_hosts)  # hot path
        self._callers: weakref.WeakKeyDictionary[connection.Client, str] = (
            weakref.WeakKeyDictionary()
        )
        # Forwarded requests and tunnels to our own reverse listeners go to their upstreams.
        self._reverse_targets = OwnListeners(opts.reverse)
        self._tunnels: weakref.WeakKeyDictionary[connection.Client, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        # The process behind each local client connection, looked up once, by a helper
        # process (caller_lookups.py).
        self._lookups: CallerLookups | None = None
        if opts.process_callers and PROCESS_LOOKUP_SUPPORTED:
            self._lookups = CallerLookups(opts.caller_processes)
        meta = {
            "listen": str(opts.listen),
            "listeners": {n.name: str(n.listen) for n in opts.listeners},
            "allow_hosts": list(opts.allow_hosts),
            "ignore_hosts": list(opts.ignore_hosts),
            "reverse": {r.name: f"{r.upstream}@{r.listen}" for r in opts.reverse},
            "services": {s.name: f"{s.host}:{s.port}" if s.port else s.host
                         for s in opts.services},
            "redaction": opts.redact,
            "otlp_receive": opts.otlp_receive is not None,
            "inject_traceparent": opts.inject_traceparent,
        }
        self._routes = RouteTable(opts.routes)
        self._redactor = (Redactor(opts.redact_names, opts.redact_headers, opts.redact_json)
                          if opts.redact else None)
        transform = _chain(self._routes or None,
                           self._redactor)
        header = new_header(meta)
        # Provisional until the listeners are bound: a recorder that cannot start must not
        # replace the capture a previous run left at the same path.
        # Records built here from mitmproxy's flows are sound by construction: the
        # read-back check (+29 µs a record on the event loop) guards imports instead.
        self.writer = CaptureWriter(opts.output, header, transform, opts.queue_size,
                                    provisional=True, on_failure=_report_write_failure,
                                    check=False)
        self.live: LiveSpans | None = None
        if opts.otlp or opts.inject_traceparent:  # receiving alone needs no live state
            self.live = LiveSpans(str(header.created), opts.otlp, opts.inject_traceparent)
        self.receiver: OtlpReceiver | None = None
        self.control: ControlServer | None = None
        self.exchanges = 0
        self.errors = 0
        self.metrics = Metrics()  # live per-edge/route/test figures, bounded (GET /metrics)
        self.started = time.time()
        self._done = False
        # False while services tapproxy starts itself are still coming up: a run whose
        # service never listens must not replace the previous capture either.
        self.publish_when_running = True
        self._own = OwnAddresses()
        self._own.add("forward proxy listener", opts.listen)
        for n in opts.listeners:
            self._own.add(f"forward proxy listener for {n.name}", n.listen)
        if opts.otlp_receive is not None:
            self._own.add("OTLP receiver", opts.otlp_receive)
        # Requests arriving from the proxy's own upstream connections: itself, looping.
        self._own_connections = OwnConnections()
        self.addons.append(self._own_connections)

    # -- identity ---------------------------------------------------------------------

    def _refuse_own_address(self, flow: http.HTTPFlow) -> bool:
        """Answer 403 to a request for one of the proxy's own listeners (True if so),
        508 to one the proxy sent to itself by a name the 403 did not recognise."""
        q = flow.request
        client = flow.client_conn
        if self._own_connections.came_from_us(client.peername, client.sockname):
            # The hop before this one is the exchange the caller made: it gets this 508
            # as its answer and is recorded once; this hop, tapproxy to itself, is not.
            reason = (f"loop detected: {q.host}:{q.port} is tapproxy itself; "
                      "it does not forward requests to itself")
            flow.response = http.Response.make(508, reason + "\n",
                                               {"Content-Type": "text/plain"})
            flow.metadata[_REFUSED] = reason
            flow.metadata[_SELF] = True
            log.warning("refused %s: a loop back into tapproxy itself", q.method)
            return True
        own = self._own.named_by(q.host, q.port)
        if own is None:
            return False
        what, address = own
        reason = (f"tapproxy does not forward to its own {what} ({address}); "
                  f"send requests for it directly, not through the proxy")
        flow.response = http.Response.make(403, reason + "\n", {"Content-Type": "text/plain"})
        flow.metadata[_REFUSED] = reason
        # One short line on stderr; the 403 and the record say to where and what to do.
        log.warning("refused %s to its own %s", q.method, what)
        return True

    @property
    def processes(self) -> CallerLookups | None:
        """The process lookups, to tell them about services tapproxy started (None if off)."""
        return self._lookups

    def client_connected(self, client: connection.Client) -> None:
        # Started as the connection opens, so it runs while the request is read. A named
        # listener's callers are named by the listener, which wins: no lookup for them.
        if self._lookups is not None and not self._named_listener(client):
            self._lookups.start(client)

    def _named_listener(self, client: connection.Client) -> str | None:
        mode = client.proxy_mode
        if not self._listeners or mode.type_name != "regular":
            return None
        return self._listeners.get(mode.custom_listen_port)  # type: ignore[arg-type]

    def server_connected(self, data) -> None:
        # Who answers on a local address: looked up now, named when the exchange is
        # written (by then a service that calls others has done so, as its proxy user).
        if self._lookups is not None and data.client.proxy_mode.type_name != "reverse":
            self._lookups.start(data.server, server=True)

    def after_lookup(self, conn: connection.Connection, hook, *args):
        """Run `hook(*args)` now, or once the process lookup of `conn` (a client or a
        server connection) is done (awaitable)."""
        lookup = self._lookups.pending(conn) if self._lookups is not None else None
        if lookup is None:
            return hook(*args)

        async def later():
            # A lookup takes well under a millisecond; one that does not come back (the
            # helper stopped, the machine thrashing) must not hold the request for long.
            await asyncio.wait([lookup], timeout=_LOOKUP_WAIT)
            pending = hook(*args)
            if pending is not None:
                await pending

        return later()

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if self._refuse_own_address(flow):
            return
        # For HTTPS the credentials that name the caller arrive once, on CONNECT, and
        # hold for every request inside that tunnel.
        name = caller_from_proxy_auth(flow.request.headers.get("proxy-authorization"))
        if name:
            self._callers[flow.client_conn] = name
        if self._reverse_targets:
            target = self._reverse_targets.upstream(flow.request.host, flow.request.port)
            if target is not None:  # a tunnel to one of our reverse listeners: to its upstream
                service, scheme, flow.request.host, flow.request.port = target
                self._tunnels[flow.client_conn] = (service, scheme)

    def next_layer(self, nextlayer) -> None:
        # TLS inside a tunnel to our reverse listener for a plain-HTTP upstream: end it
        # here, as that listener would, instead of also speaking TLS to the upstream.
        # mitmproxy's NextLayer addon has already stacked ServerTLS(ClientTLS) on the same
        # context: unstack the server side (mitmproxy 12's layer internals, tested).
        tunnel = self._tunnels.get(nextlayer.context.client) if self._tunnels else None
        server_tls = nextlayer.layer
        if tunnel is not None and tunnel[1] == "http" and isinstance(server_tls,
                                                                     ServerTLSLayer):
            client_tls = server_tls.child_layer
            nextlayer.context.layers.remove(server_tls)
            nextlayer.context.server.tls = False
            client_tls.server_tls_available = False
            nextlayer.layer = client_tls

    def requestheaders(self, flow: http.HTTPFlow):
        # The first request of a connection waits for its process lookup if that has not
        # finished yet (it started when the connection opened); later ones find it done.
        return self.after_lookup(flow.client_conn, self._requestheaders, flow)

    def _requestheaders(self, flow: http.HTTPFlow) -> None:
        if self._reverse_targets and flow.client_conn.proxy_mode.type_name == "regular":
            self._to_own_listener(flow)
        h = flow.request.headers
        auth_name = header_caller = header_test = None
        # One pass over the raw fields; the headers are only changed when one of ours is
        # there, which for most requests it is not.
        if any(k[:11].lower() in _OURS for k, _ in h.fields):
            auth_name = caller_from_proxy_auth(h.get("proxy-authorization"))
            header_caller = h.get(CALLER_HEADER)
            header_test = h.get(TEST_HEADER)
            # Nothing meant for tapproxy reaches the service.
            for name in [k for k in h if k.lower().startswith("x-tapproxy-")]:
                del h[name]
            h.pop("proxy-authorization", None)

        caller = self.caller_of(flow.client_conn, auth_name, header_caller)
        if caller.source == "proxy-auth" and self._lookups is not None:
            self._lookups.called_as(flow.client_conn, caller.name)  # its name both ways
        test, source = self.tests.attribute(header_test)
        # A refused request gets our answer; mitmproxy cannot also stream its body on.
        refused = flow.request.method != "CONNECT" and self._refuse_own_address(flow)
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
            candidates, inject = self.live.request_started(
                flow.id, caller, self._callee(flow).name, test, h.get("traceparent"))
            if inject is not None:
                h["traceparent"] = inject
            flow.metadata[_LIVE] = candidates

    def caller_of(self, client: connection.Client, auth_name: str | None = None,
                  header_caller: str | None = None) -> Party:
        """Proxy credentials, else the caller header, else a named listener, else the peer."""
        name = auth_name or self._callers.get(client)
        if name:
            # With its process, so readers can give that process this name everywhere.
            process = self._lookups.process(client) if self._lookups is not None else ()
            return Party(name, "proxy-auth", address_of(client.peername), *process)
        if header_caller:
            return Party(header_caller, "header", address_of(client.peername))
        listener = self._named_listener(client)
        if listener is not None:
            return Party(listener, "listener", address_of(client.peername))
        if self._lookups is not None:  # the local process, if its lookup has finished
            process = self._lookups.get(client)
            if isinstance(process, Party):
                return process
        return peer_party(client.peername)

    def add_reverse(self, r) -> None:
        """A reverse listener added while running: name its requests and its address."""
        self._reverse[reverse_mode(r)] = r.name
        self._reverse_targets.add(r)

    def name_service(self, service: ServiceSpec) -> None:
        """Name a callee address from now on (the control API's POST /services)."""
        self._callees.add(service)

    def _to_own_listener(self, flow: http.HTTPFlow) -> None:
        """A forwarded request to one of our reverse listeners goes to its upstream."""
        if self._tunnels and flow.client_conn in self._tunnels:
            # Already sent there by http_connect; the record shows what the caller asked.
            flow.metadata[CALLER_TARGET] = addressed_by_host(flow)
            return
        target = self._reverse_targets.upstream(flow.request.host, flow.request.port)
        if target is not None:
            name, scheme, host, port = target
            r = flow.request
            flow.metadata[CALLER_TARGET] = (r.scheme, r.host, r.port)
            # Through `data`: the Host header stays the caller's, as on a reverse listener.
            r.data.scheme, r.data.host, r.data.port = scheme.encode(), host, port
            flow.metadata[_VIA] = name

    def _callee(self, flow: http.HTTPFlow) -> Party:
        return self.callee_at(flow.client_conn, flow.request.host, flow.request.port,
                              flow.metadata.get(_VIA))

    def _settled_callee(self, flow: http.HTTPFlow) -> Party:
        """The callee as written: a local server by its process, if it was looked up."""
        party = self._callee(flow)
        if party.source == "host" and self._lookups is not None:
            process = self._lookups.callee(flow.server_conn)
            if isinstance(process, Party):
                return process
        return party

    def callee_at(self, client: connection.Client, host: str, port: int,
                  via: str | None = None) -> Party:
        mode = client.proxy_mode
        reverse = self._reverse.get(mode.full_spec) if mode.type_name == "reverse" else via
        if reverse is None and self._tunnels:
            tunnel = self._tunnels.get(client)  # a tunnel to one of our reverse listeners
            reverse = tunnel[0] if tunnel is not None else None
        return self._callees.name(host, port, reverse)

    # -- recording --------------------------------------------------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        r = flow.response
        assert r is not None
        if is_grpc(r.headers):
            r.stream = GrpcTap(self.options.max_body)  # as it arrives, each message noted
        elif response_streams(flow, self.options.max_body):
            r.stream = BodyTap(self.options.max_body)

    def _submit_exchange(self, flow: http.HTTPFlow, connect_error: ErrorInfo | None = None):
        meta = flow.metadata.get(_META)
        if meta is None:  # failed before its headers were complete, or a CONNECT
            meta = (self.caller_of(flow.client_conn), *self.tests.attribute(None))
        caller, test, source = meta
        x = exchange_from_flow(flow, caller, self._settled_callee(flow), test, source)
        if connect_error is not None:
            # The 502 is mitmproxy's own answer, not the server's: record the failure.
            timing = dataclasses.replace(x.timing, response_start=None, response_end=None,
                                         error_at=time.time_ns())
            x = dataclasses.replace(x, response=None, error=connect_error, timing=timing)
        flow.metadata[_WRITTEN] = True
        if self.live is not None and _LIVE in flow.metadata:
            self.live.request_done(self._live_view(x), flow.metadata.pop(_LIVE))
        self.exchanges += 1
        if x.failed:
            self.errors += 1
        self.metrics.add(self._routes(x) if self._routes else x)
        return self.writer.submit(x)

    def _live_view(self, x: Exchange) -> Exchange:
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

    def response(self, flow: http.HTTPFlow):
        if _SELF in flow.metadata:
            return None
        if _LEFT_OUT in flow.metadata:
            return self._submit_left_out(flow)
        return self.after_lookup(flow.server_conn, self._submit_exchange, flow)

    def http_connect_error(self, flow: http.HTTPFlow):
        # mitmproxy answers a failed CONNECT itself and then calls no response hook: one
        # we refused (our own address), or one that could not reach its server (refused,
        # unresolvable, timed out), which would otherwise leave no record at all.
        error = None if flow.metadata.get(_REFUSED) else connect_failure(flow)
        if error is None:  # our 403, or an answer another addon chose (407 under mitmdump)
            return self._submit_exchange(flow)
        q = flow.request
        if host_ignored(q.host, q.port):
            flow.metadata[_LEFT_OUT] = (self.caller_of(flow.client_conn),
                                        *self.tests.attribute(None))
            return self._submit_left_out(flow, error)
        return self._submit_exchange(flow, error)

    def _submit_left_out(self, flow: http.HTTPFlow, error: ErrorInfo | None = None):
        caller, test, source = flow.metadata[_LEFT_OUT]
        flow.metadata[_WRITTEN] = True
        if error is None and flow.error is not None:
            error = ErrorInfo(classify_error(flow.error.msg), flow.error.msg)
        q, r = flow.request, flow.response
        return self.writer.submit(self.tunnels.left_out(
            flow.id, caller, self._callee(flow), int(q.timestamp_start * 1e9), error, test,
            source, _body_size(q), _body_size(r) if r else 0))

    def error(self, flow: http.HTTPFlow):
        if flow.metadata.get(_WRITTEN) or _SELF in flow.metadata:
            return None  # a WebSocket that failed after its handshake: see websocket_end
        _name_idle_timeout(flow)
        if _LEFT_OUT in flow.metadata:
            return self._submit_left_out(flow)
        return self.after_lookup(flow.server_conn, self._submit_exchange, flow)

    def tls_failed_client(self, data: tls.TlsData):
        """The client refused the handshake (it does not trust our CA, or spoke no TLS).

        No HTTP flow exists then: the record is the tunnel itself, a CONNECT (or, on a
        reverse listener, the connection) that failed with kind `tls`. A failed handshake
        with the server needs nothing here: the request that needed it fails with that
        message and is recorded as such.
        """
        conn, ctx_ = data.conn, data.context
        address = ctx_.server.address
        host, port = (address[0], address[1]) if address else (conn.sni or "", 443)
        # Which client refused (curl, java…) is worth its process lookup's wait.
        return self.after_lookup(conn, self._record_tls_failure, conn, host, port)

    def _record_tls_failure(self, conn: connection.Client, host: str, port: int):
        x = exchange_from_tls_failure(conn, host, port, self.caller_of(conn),
                                      self.callee_at(conn, host, port),
                                      *self.tests.attribute(None))
        self.exchanges += 1
        self.errors += 1
        return self.writer.submit(x)

    def websocket_message(self, flow: http.HTTPFlow):
        if _LEFT_OUT in flow.metadata:
            return None  # a WebSocket to a host left out: no exchange to attach it to
        assert flow.websocket is not None
        m = flow.websocket.messages[-1]
        return self.writer.submit(WebSocketMessage(
            exchange_id=flow.id, from_client=m.from_client, is_text=m.is_text,
            content=m.content, timestamp=int(m.timestamp * 1_000_000_000),
        ))

    def websocket_end(self, flow: http.HTTPFlow):
        if _LEFT_OUT in flow.metadata:
            return None
        ws = flow.websocket
        assert ws is not None
        return self.writer.submit(WebSocketEnd(
            exchange_id=flow.id, timestamp=time.time_ns(), close_code=ws.close_code,
            close_reason=ws.close_reason or "", error=flow.error.msg if flow.error else None,
        ))

    # -- lifecycle --------------------------------------------------------------------

    async def start_control(self) -> None:
        """Serve the control API if asked (ProxyError if its port cannot be bound)."""
        c = self.options.control
        if c is None or self.control is not None:
            return
        server = ControlServer(self, c.host, c.port, self._own_connections.came_from_us)
        try:
            await server.start()
        except OSError as e:
            reason = "address already in use" if e.errno == 98 else e.strerror or str(e)
            raise ProxyError(f"cannot listen for the control API on {c}: {reason}") from e
        self.control = server
        self._own.add("control API", Address(c.host, server.port or c.port))

    async def start_receiver(self) -> None:
        """Accept OTLP spans from instrumented services if asked (ProxyError if unbound)."""
        if self.options.otlp_receive is None or self.receiver is not None:
            return
        receiver = OtlpReceiver(self.options.otlp_receive, self._span_batch)
        await receiver.start()
        self.receiver = receiver

    def _span_batch(self, batch: SpanBatch):
        if self.live is not None:
            self.live.received(batch)
        return self.writer.submit(batch)

    def test_closed(self, case: TestCase):
        """Record a test case the control API closed (awaitable when the queue is full)."""
        if self.live is not None:
            self.live.test_ended(case)
        return self.writer.submit(case)

    async def running(self) -> None:
        if self._lookups is not None:  # the helper, ready before the first caller connects
            self._lookups.open()
        # Already done when embedded; needed under mitmdump -s.
        await self.start_control()
        await self.start_receiver()
        servers = ctx.master.addons.get("proxyserver").servers
        if self.publish_when_running and not any(s.last_exception is not None
                                                 for s in servers):
            self.writer.publish()

    async def done(self) -> None:
        if self._done:
            return
        self._done = True
        if self._lookups is not None:
            self._lookups.close()
        if self.control is not None:
            await self.control.stop()
        if self.receiver is not None:
            await self.receiver.stop()
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
