"""Naming both sides of a flow: the caller (proxy credentials, header, named listener,
its process, its address) and the callee (reverse listener, --service map, process)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

from mitmproxy import connection, http

from tapproxy.capture.model import Party
from tapproxy.proxy.routing import VIA, reverse_mode
from tapproxy.supervisor.caller_lookups import CallerLookups
from tapproxy.supervisor.identity import (
    CalleeNamer,
    address_of,
    caller_from_proxy_auth,
    peer_party,
)
from tapproxy.supervisor.options import RecordOptions, ReverseSpec, ServiceSpec
from tapproxy.supervisor.processes import SUPPORTED as PROCESS_LOOKUP_SUPPORTED

__all__ = ["CALLER_HEADER", "TEST_HEADER", "Naming", "take_our_headers"]

CALLER_HEADER = "x-tapproxy-caller"
TEST_HEADER = "x-tapproxy-test"
# First 11 bytes, lower-cased, of the request headers meant for tapproxy.
_OURS = {b"x-tapproxy-", b"proxy-autho"}
_LOOKUP_WAIT = 2.0  # seconds a connection's first request waits at most for its caller lookup


def take_our_headers(h: http.Headers) -> tuple[str | None, str | None, str | None]:
    """The caller named by proxy credentials, the caller header and the test header,
    each removed: nothing meant for tapproxy reaches the service."""
    # One pass over the raw fields; the headers are only changed when one of ours is
    # there, which for most requests it is not.
    if not any(k[:11].lower() in _OURS for k, _ in h.fields):
        return None, None, None
    found = (caller_from_proxy_auth(h.get("proxy-authorization")), h.get(CALLER_HEADER),
             h.get(TEST_HEADER))
    for name in [k for k in h if k.lower().startswith("x-tapproxy-")]:
        del h[name]
    h.pop("proxy-authorization", None)
    return found


class Naming:
    """Names callers and callees as the recorder writes them, one name per process.

    `tunnel_service(client)`: the reverse listener's service a client's tunnel goes to.
    """

    def __init__(self, opts: RecordOptions,
                 tunnel_service: Callable[[connection.Client], str | None]) -> None:
        self._callees = CalleeNamer(opts.services)
        # Reverse mode spec (as mitmproxy echoes it back) → service name.
        self._reverse = {reverse_mode(r): r.name for r in opts.reverse}
        # Named forward listeners by port: mitmproxy echoes the mode back as it parsed it.
        self._listeners = {n.listen.port: n.name for n in opts.listeners}
        self._tunnel_service = tunnel_service
        # Callers named by the credentials of a CONNECT, for every request inside it.
        self._callers: weakref.WeakKeyDictionary[connection.Client, str] = (
            weakref.WeakKeyDictionary()
        )
        # The process behind each local client connection, looked up once, by a helper
        # process (caller_lookups.py).
        self.lookups: CallerLookups | None = None
        if opts.process_callers and PROCESS_LOOKUP_SUPPORTED:
            self.lookups = CallerLookups(opts.caller_processes)

    def connected_as(self, client: connection.Client, name: str) -> None:
        """Name every request of this client connection (a tunnel's credentials)."""
        self._callers[client] = name

    def client_connected(self, client: connection.Client) -> None:
        # Started as the connection opens, so it runs while the request is read. A named
        # listener's callers are named by the listener, which wins: no lookup for them.
        if self.lookups is not None and not self.named_listener(client):
            self.lookups.start(client)

    def server_connected(self, data) -> None:
        # Who answers on a local address: looked up now, named when the exchange is
        # written (by then a service that calls others has done so, as its proxy user).
        if self.lookups is not None and data.client.proxy_mode.type_name != "reverse":
            self.lookups.start(data.server, server=True)

    def named_listener(self, client: connection.Client) -> str | None:
        mode = client.proxy_mode
        if not self._listeners or mode.type_name != "regular":
            return None
        return self._listeners.get(mode.custom_listen_port)  # type: ignore[arg-type]

    def after_lookup(self, conn: connection.Connection, hook, *args):
        """Run `hook(*args)` now, or once the process lookup of `conn` (a client or a
        server connection) is done (awaitable)."""
        lookup = self.lookups.pending(conn) if self.lookups is not None else None
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

    def caller_of(self, client: connection.Client, auth_name: str | None = None,
                  header_caller: str | None = None) -> Party:
        """Proxy credentials, else the caller header, else a named listener, else the peer."""
        # (Asked only when some tunnel had credentials: a weak-keyed lookup costs.)
        name = auth_name or (self._callers.get(client) if self._callers else None)
        if name:
            # With its process, so readers can give that process this name everywhere.
            process = self.lookups.process(client) if self.lookups is not None else ()
            return Party(name, "proxy-auth", address_of(client.peername), *process)
        if header_caller:
            return Party(header_caller, "header", address_of(client.peername))
        listener = self.named_listener(client)
        if listener is not None:
            return Party(listener, "listener", address_of(client.peername))
        if self.lookups is not None:  # the local process, if its lookup has finished
            process = self.lookups.get(client)
            if isinstance(process, Party):
                return process
        return peer_party(client.peername)

    def called_as(self, client: connection.Client, caller: Party) -> None:
        """A caller named by its credentials: its process gets that name both ways."""
        if caller.source == "proxy-auth" and self.lookups is not None:
            self.lookups.called_as(client, caller.name)

    def add_reverse(self, r: ReverseSpec) -> None:
        """A reverse listener added while running: name its requests."""
        self._reverse[reverse_mode(r)] = r.name

    def name_service(self, service: ServiceSpec) -> None:
        """Name a callee address from now on (the control API's POST /services)."""
        self._callees.add(service)

    def callee(self, flow: http.HTTPFlow) -> Party:
        return self.callee_at(flow.client_conn, flow.request.host, flow.request.port,
                              flow.metadata.get(VIA))

    def settled_callee(self, flow: http.HTTPFlow) -> Party:
        """The callee as written: a local server by its process, if it was looked up."""
        party = self.callee(flow)
        if party.source == "host" and self.lookups is not None:
            process = self.lookups.callee(flow.server_conn)
            if isinstance(process, Party):
                return process
        return party

    def callee_at(self, client: connection.Client, host: str, port: int,
                  via: str | None = None) -> Party:
        mode = client.proxy_mode
        reverse = self._reverse.get(mode.full_spec) if mode.type_name == "reverse" else via
        if reverse is None:
            reverse = self._tunnel_service(client)  # a tunnel to one of our reverse listeners
        return self._callees.name(host, port, reverse)
