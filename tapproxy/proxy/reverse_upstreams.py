"""Reverse listeners whose service is down or still starting answer like the forward proxy.

mitmproxy's reverse mode connects to the upstream as soon as a client connects (its
`connection_strategy=eager`, which raw TCP protocols whose server speaks first need); if
that fails it closes the client's connection before reading a request. The client gets
an empty reply and nothing is recorded. For HTTP(S) upstreams, the only kind tapproxy's
`--reverse` and `--start` take, the upstream is connected when the request has been read
instead, so a service that is down gives the client a 502 and the capture a `refused`
exchange, as the forward proxy does.

A service `--start` is still starting is a connection held, not refused: `hold()` it
before starting, `release()` it when its private port accepts or the start failed.
"""

from __future__ import annotations

import asyncio

from mitmproxy.proxy import events, layer
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.mode_servers import ReverseInstance

__all__ = ["Held", "StartingServices", "connect_reverse_upstreams_on_request"]


class _ConnectOnRequest(modes.ReverseProxy):
    """mitmproxy's ReverseProxy with the lazy strategy for HTTP(S) upstreams."""

    def finish_start(self) -> layer.CommandGenerator[str | None]:
        spec = self.context.client.proxy_mode
        if spec.scheme in ("https", "tls", "http3", "quic", "dtls"):  # type: ignore
            # The upstream's own name for TLS, as mitmproxy does unless keep_host_header
            # (which the embedded proxy sets so that the service sees its caller's Host).
            self.context.server.sni = spec.address[0]  # type: ignore[attr-defined]
        if spec.scheme not in ("http", "https"):  # type: ignore[attr-defined]
            return (yield from super().finish_start())
        # What DestinationKnown.finish_start does with connection_strategy=lazy; the
        # HTTP layer opens the connection for the first request (mitmproxy 12, tested in
        # tests/proxy/test_reverse_upstreams.py).
        self._handle_event = self.child_layer.handle_event  # type: ignore[method-assign]
        yield from self.child_layer.handle_event(events.Start())
        return None


def _top_layer(self, context):
    return _ConnectOnRequest(context)


def connect_reverse_upstreams_on_request() -> None:
    """Make every reverse listener in this process connect per request (idempotent).

    mitmproxy picks a reverse listener's first layer in ReverseInstance.make_top_layer,
    with no hook to choose another; the embedded proxy replaces that method.
    """
    ReverseInstance.make_top_layer = _top_layer  # type: ignore[method-assign]


class Held:
    """Connections to one service's address wait until it is released."""

    def __init__(self, owner: StartingServices, address: tuple[str, int], name: str) -> None:
        self._owner, self.address, self.name = owner, address, name
        self._done = asyncio.get_running_loop().create_future()

    def release(self, error: str | None = None) -> None:
        """The service listens (error None), or it will not: held connections fail, and
        so do those whose request is read later, as the run stops (not a bare refusal)."""
        if error is None:
            self._owner.forget(self)
        if not self._done.done():
            self._done.set_result(error)

    async def wait(self) -> str | None:
        return await asyncio.shield(self._done)


class StartingServices:
    """mitmproxy addon: a connection to a service still starting waits for it."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], Held] = {}

    def hold(self, address: tuple[str, int], name: str) -> Held:
        held = self._held[address] = Held(self, address, name)
        return held

    def forget(self, held: Held) -> None:
        if self._held.get(held.address) is held:
            del self._held[held.address]

    async def server_connect(self, data) -> None:
        if not self._held:
            return
        address = data.server.address
        held = self._held.get((address[0], address[1])) if address else None
        if held is None:
            return
        error = await held.wait()
        if error is not None:
            data.server.error = f"service {held.name} did not start: {error}"
