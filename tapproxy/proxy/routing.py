"""Where a request goes: the mitmproxy modes for the listeners, our reverse listeners
reached through the forward proxy, and refusals of requests for the proxy itself."""

from __future__ import annotations

import logging
import weakref

from mitmproxy import connection, http

from tapproxy.proxy.convert import CALLER_TARGET, addressed_by_host
from tapproxy.supervisor.identity import OwnListeners
from tapproxy.supervisor.options import RecordOptions, ReverseSpec
from tapproxy.supervisor.own_addresses import OwnAddresses, OwnConnections

__all__ = ["REFUSED", "SELF", "VIA", "Routing", "mitmproxy_modes", "reverse_mode"]

log = logging.getLogger(__name__)

VIA = "tapproxy.via"  # name of our own reverse listener a forwarded request was meant for
REFUSED = "tapproxy.refused"
SELF = "tapproxy.self"  # a request the proxy sent to itself: answered, never recorded


def reverse_mode(r: ReverseSpec) -> str:
    """The mitmproxy mode of a reverse listener, as mitmproxy echoes it back."""
    return f"reverse:{r.upstream}@{r.listen}"


def mitmproxy_modes(opts: RecordOptions) -> list[str]:
    """The mitmproxy `mode` option for these options: forward listeners, then reverses."""
    return [f"regular@{opts.listen}", *(f"regular@{n.listen}" for n in opts.listeners),
            *(reverse_mode(r) for r in opts.reverse)]


class Routing:
    """Sends forwarded requests and tunnels for our own reverse listeners to their
    upstreams, and answers requests for the proxy's own addresses itself."""

    def __init__(self, opts: RecordOptions) -> None:
        self.targets = OwnListeners(opts.reverse)
        # Tunnels (CONNECT) to one of our reverse listeners: client → (service, scheme).
        self.tunnels: weakref.WeakKeyDictionary[connection.Client, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self.own = OwnAddresses()
        self.own.add("forward proxy listener", opts.listen)
        for n in opts.listeners:
            self.own.add(f"forward proxy listener for {n.name}", n.listen)
        if opts.otlp_receive is not None:
            self.own.add("OTLP receiver", opts.otlp_receive)
        # Requests arriving from the proxy's own upstream connections: itself, looping.
        self.own_connections = OwnConnections()

    def tunnel_service(self, client: connection.Client) -> str | None:
        """The service of our reverse listener this client's tunnel goes to, if any."""
        if not self.tunnels:
            return None
        tunnel = self.tunnels.get(client)
        return tunnel[0] if tunnel is not None else None

    def refuse_own_address(self, flow: http.HTTPFlow) -> bool:
        """Answer 403 to a request for one of the proxy's own listeners (True if so),
        508 to one the proxy sent to itself by a name the 403 did not recognise."""
        q = flow.request
        client = flow.client_conn
        if self.own_connections.came_from_us(client.peername, client.sockname):
            # The hop before this one is the exchange the caller made: it gets this 508
            # as its answer and is recorded once; this hop, tapproxy to itself, is not.
            reason = (f"loop detected: {q.host}:{q.port} is tapproxy itself; "
                      "it does not forward requests to itself")
            flow.response = http.Response.make(508, reason + "\n",
                                               {"Content-Type": "text/plain"})
            flow.metadata[REFUSED] = reason
            flow.metadata[SELF] = True
            log.warning("refused %s: a loop back into tapproxy itself", q.method)
            return True
        own = self.own.named_by(q.host, q.port)
        if own is None:
            return False
        what, address = own
        reason = (f"tapproxy does not forward to its own {what} ({address}); "
                  f"send requests for it directly, not through the proxy")
        flow.response = http.Response.make(403, reason + "\n", {"Content-Type": "text/plain"})
        flow.metadata[REFUSED] = reason
        # One short line on stderr; the 403 and the record say to where and what to do.
        log.warning("refused %s to its own %s", q.method, what)
        return True

    def connect(self, flow: http.HTTPFlow) -> None:
        """A tunnel (CONNECT) to one of our reverse listeners goes to its upstream."""
        if not self.targets:
            return
        target = self.targets.upstream(flow.request.host, flow.request.port)
        if target is not None:
            service, scheme, flow.request.host, flow.request.port = target
            self.tunnels[flow.client_conn] = (service, scheme)

    def to_own_listener(self, flow: http.HTTPFlow) -> None:
        """A forwarded request to one of our reverse listeners goes to its upstream."""
        if self.tunnels and flow.client_conn in self.tunnels:
            # Already sent there by connect(); the record shows what the caller asked.
            flow.metadata[CALLER_TARGET] = addressed_by_host(flow)
            return
        target = self.targets.upstream(flow.request.host, flow.request.port)
        if target is not None:
            name, scheme, host, port = target
            r = flow.request
            flow.metadata[CALLER_TARGET] = (r.scheme, r.host, r.port)
            # Through `data`: the Host header stays the caller's, as on a reverse listener.
            r.data.scheme, r.data.host, r.data.port = scheme.encode(), host, port
            flow.metadata[VIA] = name
