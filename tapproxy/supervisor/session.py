"""A recording run's start-up and shutdown: the proxy, then the services it fronts, each
let through once it listens; on SIGINT/SIGTERM the services first, then the proxy.

The worker side (tapproxy.proxy) is loaded only when a run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tapproxy.errors import ProxyError
from tapproxy.supervisor.fronting import ServiceProcess
from tapproxy.supervisor.options import Address, RecordOptions

if TYPE_CHECKING:
    from tapproxy.proxy.runner import RecordingProxy

__all__ = ["WorkersRun", "record_until_stopped", "record_with_workers"]


async def record_until_stopped(
    opts: RecordOptions, fronted: Sequence[ServiceProcess], *, verbose: bool,
    on_started: Callable[[RecordingProxy], None],
    interrupted_before: Callable[[], bool] = lambda: False,
) -> RecordingProxy | None:
    """Record until SIGINT/SIGTERM; `on_started(proxy)` once everything listens and the
    capture is published. The stopped proxy, or None if a signal came while starting
    (every service stopped, no capture written). ProxyError if something cannot start.

    `interrupted_before()`: a Ctrl-C some library swallowed while this was loading.
    """
    from tapproxy.proxy.certs import env_exports
    from tapproxy.proxy.runner import RecordingProxy

    async def stop_services() -> None:
        for svc in reversed(fronted):
            await asyncio.to_thread(svc.stop)

    # Ctrl-C and SIGTERM are ours from the start: during start-up they stop a service
    # still coming up and end the run once all is started; no KeyboardInterrupt
    # cancels a start half done (leaving a service running) or prints a traceback.
    loop = asyncio.get_running_loop()
    interrupted = threading.Event()
    stopping: list[asyncio.Task] = []

    async def shutdown() -> None:
        await stop_services()  # first, so that their last calls are still recorded
        proxy.request_stop()

    def on_signal() -> None:
        interrupted.set()
        if up and not stopping:
            stopping.append(loop.create_task(shutdown()))

    up = False  # everything started: a signal now stops the run
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if interrupted_before():
        interrupted.set()
    # Published once all is up: a start that is interrupted leaves no capture.
    proxy = RecordingProxy(opts, verbose=verbose, publish=False)
    await proxy.start()
    holds = []
    try:
        assert proxy.recorder is not None
        processes = proxy.recorder.processes
        # Their public ports accept already: a caller that connects now waits until
        # the service listens (or gets a 502 if it never does).
        holds = [proxy.hold(svc.upstream, svc.name) for svc in fronted]
        for svc, held in zip(fronted, holds, strict=True):
            if interrupted.is_set():
                break
            try:
                await asyncio.to_thread(
                    svc.start, env_exports(opts.listen, opts.confdir, caller=svc.name),
                    lambda pid, name=svc.name: processes and processes.add_service(pid, name),
                    abort=interrupted)
            except ProxyError as e:
                held.release(str(e))
                await proxy.drain()  # the callers already waiting get their 502 first
                raise
            held.release()
        if interrupted.is_set():  # between two starts, or after the last one
            raise ProxyError("start interrupted")
    except BaseException:
        for held in holds:  # no-ops for those started; the others will not be
            held.release("start interrupted")
        await stop_services()
        await proxy.stop()
        if interrupted.is_set():
            return None
        raise
    up = True
    proxy.publish()
    on_started(proxy)
    try:
        await proxy.wait()
    finally:
        await stop_services()
    return proxy


class WorkersRun:
    """A `--workers N` run as `record` announces and sums it up."""

    def __init__(self, group, control) -> None:
        self.group = group
        self.options: RecordOptions = group.options
        self._control = control
        self.records: int | None = None  # in the merged capture, once stopped

    @property
    def control(self) -> Address | None:
        c = self._control
        if c is None or c.port is None or self.options.control is None:
            return None
        return Address(self.options.control.host, c.port)


async def record_with_workers(
    opts: RecordOptions, fronted: Sequence[ServiceProcess], *, verbose: bool,
    on_started: Callable[[WorkersRun], None],
    interrupted_before: Callable[[], bool] = lambda: False,
) -> WorkersRun | None:
    """record_until_stopped with `opts.workers` processes behind the same listeners:
    the services start once every worker listens, the control API once they do."""
    from tapproxy.proxy.certs import env_exports
    from tapproxy.supervisor.fanout import FanOutControl
    from tapproxy.supervisor.workers import WorkerGroup

    loop = asyncio.get_running_loop()
    interrupted = threading.Event()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: (interrupted.set(), stop.set()))
    if interrupted_before():
        interrupted.set()
    group = WorkerGroup(opts, verbose=verbose)
    control = None
    held: list[str] = []
    try:
        await asyncio.to_thread(group.start)
        for svc in fronted:  # callers who come early wait for it, as with one worker
            await asyncio.to_thread(group.command, "hold", svc.upstream, svc.name)
            held.append(svc.upstream)
        for svc in fronted:
            if interrupted.is_set():
                break
            try:
                await asyncio.to_thread(
                    svc.start,
                    env_exports(group.options.listen, opts.confdir, caller=svc.name),
                    lambda pid, name=svc.name: group.command("add_service", pid, name, True),
                    abort=interrupted)
            except ProxyError as e:
                await asyncio.to_thread(group.command, "release", svc.upstream, str(e))
                raise
            await asyncio.to_thread(group.command, "release", svc.upstream, None)
        if interrupted.is_set():
            raise ProxyError("start interrupted")
        if opts.control is not None:  # up once everything is: a harness may start
            control = FanOutControl(group, opts.control)
            try:
                await control.start()
            except OSError as e:
                control = None
                reason = "address already in use" if e.errno == 98 else e.strerror
                raise ProxyError(f"cannot listen for the control API on {opts.control}: "
                                 f"{reason}") from e
            await asyncio.to_thread(group.command, "own_control",
                                    Address(opts.control.host, control.port or 0))
    except BaseException:
        for upstream in held:  # no-ops for those released
            with contextlib.suppress(ProxyError):
                await asyncio.to_thread(group.command, "release", upstream,
                                        "start interrupted")
        for svc in reversed(fronted):
            await asyncio.to_thread(svc.stop)
        if control is not None:
            await control.stop()
        await asyncio.to_thread(group.stop, False)
        if interrupted.is_set():
            return None
        raise
    run = WorkersRun(group, control)
    on_started(run)
    try:
        await stop.wait()
    finally:
        for svc in reversed(fronted):  # first, so that their last calls are recorded
            await asyncio.to_thread(svc.stop)
        if control is not None:
            await control.stop()
        run.records = await asyncio.to_thread(group.stop)
    return run
