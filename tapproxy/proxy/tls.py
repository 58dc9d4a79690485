"""TLS the recorder takes part in: ending a client's TLS inside a tunnel to one of our
reverse listeners, and what a client's refused handshake leaves to record."""

from __future__ import annotations

from mitmproxy import connection, tls
from mitmproxy.proxy.layers.tls import ServerTLSLayer

__all__ = ["end_tls_here", "refused_handshake"]


def end_tls_here(nextlayer, tunnel: tuple[str, str] | None) -> None:
    """TLS inside a tunnel to our reverse listener for a plain-HTTP upstream: end it
    here, as that listener would, instead of also speaking TLS to the upstream.

    mitmproxy's NextLayer addon has already stacked ServerTLS(ClientTLS) on the same
    context: unstack the server side (mitmproxy 12's layer internals, tested).
    """
    server_tls = nextlayer.layer
    if tunnel is not None and tunnel[1] == "http" and isinstance(server_tls, ServerTLSLayer):
        client_tls = server_tls.child_layer
        nextlayer.context.layers.remove(server_tls)
        nextlayer.context.server.tls = False
        client_tls.server_tls_available = False
        nextlayer.layer = client_tls


def refused_handshake(data: tls.TlsData) -> tuple[connection.Client, str, int]:
    """The client whose handshake failed, and the host and port it was meant for."""
    conn, context = data.conn, data.context
    address = context.server.address
    host, port = (address[0], address[1]) if address else (conn.sni or "", 443)
    return conn, host, port  # type: ignore[return-value]
