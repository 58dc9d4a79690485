"""An upstream that never answers the TLS handshake fails it, instead of hanging.

mitmproxy has no handshake timeout of its own. An HTTPS request to a service that speaks
plain HTTP usually fails at once ("The remote server does not speak TLS": the server
answered the hello with an HTTP error), but a server that waits for the end of a request
head before it answers (h11, many hand-written servers) says nothing at all. The client's
own handshake with the proxy waits for the upstream's, so nothing moves until the idle
timeout closes the client, and the capture then blames the client's TLS.

A TLS server answers a ClientHello within a round trip; after `limit` seconds of silence
the upstream connection is closed, so the request fails as an upstream `tls` error and
the client gets a 502 with the reason.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import connection, ctx, http, tls
from mitmproxy.flow import Error

from tapproxy.supervisor.processes import is_loopback

__all__ = ["UpstreamHandshakeWatch", "handshake_limit"]

log = logging.getLogger(__name__)

_LIMIT = 10.0  # seconds; a TLS server that is up answers within milliseconds
_LOCAL_LIMIT = 2.0  # the same on loopback, where no network stands between: at once
_CLOSED = "connection closed"  # mitmproxy's words for a close during the handshake


def handshake_limit(idle_timeout: float) -> float:
    """Seconds an upstream may stay silent after our ClientHello: within the idle timeout,
    so the upstream's silence is named before the client's connection is closed."""
    return min(_LIMIT, idle_timeout / 2)


class UpstreamHandshakeWatch:
    """mitmproxy addon: closes an upstream connection silent after `limit` s of handshake."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._timers: dict[str, asyncio.TimerHandle] = {}  # server connection id → timer
        # Client connection id → why its upstream was closed: requests on it fail then or
        # later (mitmproxy may fail them with a copy of the server connection). Forgotten
        # with the client's connection.
        self._silenced: dict[str, str] = {}

    def tls_start_server(self, data: tls.TlsData) -> None:
        conn = data.conn
        loop = asyncio.get_running_loop()
        limit = self.limit
        if conn.peername and is_loopback(conn.peername[0]):
            limit = min(limit, _LOCAL_LIMIT)  # a local TLS server answers in milliseconds
        self._timers[conn.id] = loop.call_later(limit, self._silent, data)

    def tls_established_server(self, data: tls.TlsData) -> None:
        self._done(data)

    def tls_failed_server(self, data: tls.TlsData) -> None:
        self._done(data)

    def server_disconnected(self, data) -> None:
        timer = self._timers.pop(data.server.id, None)
        if timer is not None:
            timer.cancel()

    def _done(self, data: tls.TlsData) -> None:
        timer = self._timers.pop(data.conn.id, None)
        if timer is not None:
            timer.cancel()

    def _silent(self, data: tls.TlsData) -> None:
        self._timers.pop(data.conn.id, None)
        server = data.conn
        handler = ctx.master.addons.get("proxyserver").connections.get(data.context.client.id)
        io = handler.transports.get(server) if handler is not None else None
        if io is None or io.handler is None:
            return  # already gone
        address = f"{server.address[0]}:{server.address[1]}" if server.address else "?"
        why = (f"TLS handshake failed: {address} did not answer it within {self.limit:g} s "
               "(does it speak plain HTTP?)")
        log.warning("%s: no answer to the TLS handshake in %g s", address, self.limit)
        self._silenced[data.context.client.id] = why
        io.handler.cancel(why)

    def error(self, flow: http.HTTPFlow) -> None:
        # mitmproxy reports the close as "connection closed"; the record says why.
        # (This addon comes before the recorder, whose error hook writes the record.)
        why = self._silenced.get(flow.client_conn.id) if self._silenced else None
        if why is not None and flow.error is not None and flow.error.msg == _CLOSED:
            flow.error = Error(why, flow.error.timestamp)

    def client_disconnected(self, client: connection.Client) -> None:
        if self._silenced:
            self._silenced.pop(client.id, None)
