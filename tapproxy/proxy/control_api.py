"""The servers a recorder runs beside its listeners: the control API and the OTLP
receiver, started with the proxy and stopped with it."""

from __future__ import annotations

from collections.abc import Callable

from tapproxy.capture.model import SpanBatch
from tapproxy.errors import ProxyError
from tapproxy.supervisor.control import Controlled, ControlServer
from tapproxy.supervisor.options import Address, RecordOptions
from tapproxy.supervisor.own_addresses import OwnAddresses

__all__ = ["ControlEndpoints"]


class ControlEndpoints:
    """The control API and the OTLP receiver of one recorder, each only if asked for."""

    def __init__(self, opts: RecordOptions, own: OwnAddresses,
                 came_from_us: Callable[[tuple | None, tuple | None], bool]) -> None:
        self._options = opts
        self._own = own
        self._came_from_us = came_from_us
        self.control: ControlServer | None = None
        self.receiver = None  # an OtlpReceiver, if asked for

    async def start_control(self, target: Controlled) -> None:
        """Serve the control API if asked (ProxyError if its port cannot be bound)."""
        c = self._options.control
        if c is None or self.control is not None:
            return
        server = ControlServer(target, c.host, c.port, self._came_from_us)
        try:
            await server.start()
        except OSError as e:
            reason = "address already in use" if e.errno == 98 else e.strerror or str(e)
            raise ProxyError(f"cannot listen for the control API on {c}: {reason}") from e
        self.control = server
        self._own.add("control API", Address(c.host, server.port or c.port))

    async def start_receiver(self, on_batch: Callable[[SpanBatch], object]) -> None:
        """Accept OTLP spans from instrumented services if asked (ProxyError if unbound)."""
        if self._options.otlp_receive is None or self.receiver is not None:
            return
        # Here, not at the top: it loads the OpenTelemetry SDK, a tenth of a second of
        # start-up for the proxies that receive no spans.
        from tapproxy.supervisor.receiver import OtlpReceiver

        receiver = OtlpReceiver(self._options.otlp_receive, on_batch)
        await receiver.start()
        self.receiver = receiver

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        if self.receiver is not None:
            await self.receiver.stop()
