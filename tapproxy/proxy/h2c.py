"""HTTP/2 with prior knowledge over cleartext (h2c), which mitmproxy 12 does not parse.

mitmproxy picks its HTTP/2 layers only from the ALPN a TLS handshake negotiated
(`HttpLayer` and `HttpClient` look at `client.alpn` / `server.alpn`), so a client that
opens a plaintext connection with the HTTP/2 connection preface — every gRPC client
without TLS — is read as an HTTP/1 request `PRI * HTTP/2.0` and killed, or, inside a
CONNECT tunnel whose server greeted first with its SETTINGS, relayed as raw TCP.
mitmproxy's own support is an open pull request (mitmproxy#8127; issues #3362, #6998).

This addon runs last in the addon chain (after mitmproxy's `NextLayer` and the
recorder) and amends the decision: when the
client's first bytes are the preface, the HTTP layer mitmproxy chose (or the raw TCP
layer it fell back to) becomes an HTTP layer with both sides marked `h2`, as if ALPN
had said so; the server side then speaks h2c too. Connections mitmproxy was told to
ignore (`ignore_hosts`, `allow_hosts`) stay ignored. The h2c *upgrade* path
(`Upgrade: h2c`) is left to mitmproxy's `disable_h2c`, which strips it.
"""

from __future__ import annotations

from mitmproxy.proxy import layer, layers
from mitmproxy.proxy.layers.http import HTTPMode

__all__ = ["PREFACE", "H2cPriorKnowledge"]

#: RFC 9113 §3.4: the client connection preface.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _looks_like_h2_settings(data: bytes) -> bool:
    """An HTTP/2 server's first frame: SETTINGS (type 4) on stream 0 (RFC 9113 §3.4)."""
    return len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00"


def _amendable(chosen: layer.Layer | None) -> bool:
    """mitmproxy chose plaintext HTTP, raw TCP that it records (not an ignored host), or nothing."""
    if chosen is None:
        return True
    if isinstance(chosen, layers.TCPLayer):
        return chosen.flow is not None
    return isinstance(chosen, layers.HttpLayer)


class H2cPriorKnowledge:
    """mitmproxy addon: parse cleartext HTTP/2 with prior knowledge as HTTP/2."""

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        context = nextlayer.context
        if context.client.transport_protocol != "tcp" or context.client.alpn:
            return  # TLS negotiated its protocol already, or not TCP at all
        if not _amendable(nextlayer.layer):
            return
        data = nextlayer.data_client()
        if not data.startswith(PREFACE):
            if PREFACE.startswith(data) and (data or _looks_like_h2_settings(
                    nextlayer.data_server())):
                # Not decided yet: a client that has sent part of the preface, or an h2c
                # server that greeted first (mitmproxy would take that for raw TCP).
                nextlayer.layer = None
            return
        mode = HTTPMode.transparent
        if isinstance(nextlayer.layer, layers.HttpLayer):
            mode = nextlayer.layer.mode  # regular on a forward listener spoken to directly
        context.client.alpn = b"h2"
        if not context.server.tls:
            # The connection mitmproxy may already have opened (CONNECT, reverse): h2c too.
            # Connections it opens later get the same in `server_connect`.
            context.server.alpn = b"h2"
        nextlayer.layer = layers.HttpLayer(context, mode)

    def server_connect(self, data) -> None:
        client, server = data.client, data.server
        if client.alpn == b"h2" and not client.tls and not server.tls:
            server.alpn = b"h2"  # the client spoke h2c: speak it upstream too
