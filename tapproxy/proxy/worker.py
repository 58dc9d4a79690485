"""One worker of `record --workers N`: a recording mitmproxy in a process of its own,
listening with SO_REUSEPORT beside its siblings and writing its own capture part.

Its parent (tapproxy.supervisor.workers) starts it with `multiprocessing`'s spawn and
reads one message on the pipe: ("ready", control port) or ("error", one line).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
import threading

from tapproxy.errors import TapproxyError
from tapproxy.supervisor.options import RecordOptions

__all__ = ["run_worker"]


class _ReusePortAsyncio:
    """`asyncio` as mitmproxy's servers see it, binding with SO_REUSEPORT: the kernel
    spreads the connections to one port over every worker listening on it. mitmproxy
    has no option for it (mode_servers.py calls `asyncio.start_server(handler, host,
    port)`), so its module gets this stand-in for `asyncio`; nothing else changes."""

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    start_server = staticmethod(functools.partial(asyncio.start_server, reuse_port=True))


def _listen_with_reuse_port(udp: bool) -> None:
    """Bind every TCP listener with SO_REUSEPORT; with `udp` False (every worker but the
    first) listen on TCP only where mitmproxy would add a UDP listener on the same port
    (a reverse listener to an https upstream also takes HTTP/3): mitmproxy's UDP servers
    cannot share a port, so HTTP/3 goes to the first worker alone."""
    from mitmproxy.proxy import mode_servers, mode_specs

    mode_servers.asyncio = _ReusePortAsyncio()  # type: ignore[assignment]
    if udp:
        return
    original = mode_specs.ReverseMode.__post_init__

    def tcp_only(self) -> None:
        original(self)
        if self.transport_protocol == mode_specs.BOTH:
            object.__setattr__(self, "transport_protocol", mode_specs.TCP)

    mode_specs.ReverseMode.__post_init__ = tcp_only  # type: ignore[method-assign]


def run_worker(opts: RecordOptions, conn, verbose: bool = False, udp: bool = True) -> None:
    """Record until SIGTERM (or SIGINT); the part is published once listening, so it
    stays readable whatever happens to this process after. `udp`: also listen on UDP
    where a mode does (the first worker only)."""
    # Ctrl-C in a terminal reaches the whole group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _listen_with_reuse_port(udp)
    try:
        asyncio.run(_serve(opts, conn, verbose))
    except TapproxyError:
        sys.exit(2)


async def _serve(opts: RecordOptions, conn, verbose: bool) -> None:
    from tapproxy.proxy.runner import RecordingProxy

    proxy = RecordingProxy(opts, verbose=verbose)
    try:
        await proxy.start()
    except TapproxyError as e:
        conn.send(("error", str(e)))
        raise
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, proxy.request_stop)
    control = proxy.control
    conn.send(("ready", control.port if control is not None else None))
    threading.Thread(target=_obey_parent, args=(conn, loop, proxy),
                     daemon=True, name="tapproxy-parent").start()
    await proxy.wait()


def _obey_parent(conn, loop: asyncio.AbstractEventLoop, proxy) -> None:
    """Run the supervisor's commands (hold or release the connections to a service
    still starting, add a reverse listener, name a process) and answer each; stop
    (closing the part cleanly) once the supervisor is gone, even SIGKILLed: a worker
    left behind would keep its ports and serve a run nobody will merge."""
    held: dict[str, object] = {}  # upstream → Held: connections wait for its service

    async def hold(upstream: str, name: str) -> None:
        held[upstream] = proxy.hold(upstream, name)

    async def release(upstream: str, error: str | None) -> None:
        if (h := held.pop(upstream, None)) is not None:
            h.release(error)  # type: ignore[attr-defined]
            if error is not None:  # the run ends: the callers waiting get their 502 first
                await proxy.drain()

    with contextlib.suppress(EOFError, OSError):
        while True:
            command, *args = conn.recv()
            try:
                if command in ("hold", "release"):
                    call = hold if command == "hold" else release
                    asyncio.run_coroutine_threadsafe(call(*args), loop).result(60)
                elif command == "own_control":
                    # The supervisor's control API is this proxy's own address too: a
                    # request for it through the proxy is refused, as with one worker.
                    own = proxy.recorder._routing.own if proxy.recorder else None
                    if own is not None:
                        loop.call_soon_threadsafe(own.add, "control API", *args)
                elif command == "add_reverse":
                    asyncio.run_coroutine_threadsafe(proxy.add_reverse(*args),
                                                     loop).result(60)
                elif command == "add_service":
                    namer = proxy.recorder.processes if proxy.recorder else None
                    if namer is not None:
                        loop.call_soon_threadsafe(namer.add_service, *args)
                conn.send(("ok", None))
            except TapproxyError as e:
                conn.send(("error", str(e)))
    with contextlib.suppress(RuntimeError):  # the loop already closed
        loop.call_soon_threadsafe(proxy.request_stop)
