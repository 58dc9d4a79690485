"""A replay from start to stop: index the capture, bind every port, serve, count.

`Replay.prepare` does everything that can fail on bad input (the capture, the service
names, the ports) before anything is served; `start` then serves, `stop` gives the
figures. `BackgroundReplay` runs one on its own thread for a synchronous caller (the
pytest plugin).
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from tapproxy.errors import ReplayError, UsageError
from tapproxy.replay.index import CaptureIndex
from tapproxy.replay.matcher import Matcher, ReplayStats
from tapproxy.replay.matching import Mask
from tapproxy.replay.options import ReplayOptions, bind_listeners
from tapproxy.replay.server import ReplayListeners
from tapproxy.report.columns import cut_end
from tapproxy.supervisor.options import Address

__all__ = ["BackgroundReplay", "Replay", "noise_mask"]


def noise_mask(ignores: Iterable[str] = ()) -> Mask:
    """The shared noise model's mask, with `--ignore` pointer globs (UsageError naming a
    bad one): values of a volatile kind (ids, timestamps, tokens) do not count."""
    from tapproxy.noise import NoiseModel, parse_pointer_glob

    try:
        globs = [parse_pointer_glob(g) for g in ignores]
    except UsageError as e:
        raise UsageError(f"--ignore: {e}") from None
    model = NoiseModel.learn(()).with_ignores(globs)
    return model.mask


class Replay:
    """One replay: prepared (nothing served yet), started, stopped."""

    def __init__(self, opts: ReplayOptions, mask: Mask,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.options = opts
        self.log = log
        self._mask = mask
        self.index: CaptureIndex | None = None
        self.matcher: Matcher | None = None
        self.listeners: ReplayListeners | None = None
        self.forward = None  # the forward proxy (mitmproxy), when --listen asks for one
        self.missing = None  # MissingRecorder, with --record-missing
        self._sockets: list[tuple[str | None, socket.socket]] = []
        self._control: socket.socket | None = None

    def prepare(self, plan: Callable[[list[str]], tuple]) -> None:
        """Index the capture, choose the listeners (`plan(callees)`), bind their ports:
        ReplayError on the first that fails, with nothing left open."""
        opts = self.options
        self.index = CaptureIndex(opts.capture, opts.criteria, self._mask)
        try:
            services = plan(self.index.callees)
            self.options = opts = _with_services(opts, services)
            wanted: list[tuple[str, Address]] = [
                (f"--service {s.name}", s.listen) for s in opts.services]
            if opts.control is not None:
                wanted.append(("--control", opts.control))
            if opts.listen is not None:
                wanted.append(("--listen", opts.listen))
            _check_distinct(wanted)
            # The forward proxy binds its own port (mitmproxy): checked free, then let go.
            bound = bind_listeners(wanted)
            if opts.listen is not None:
                bound.pop().close()
            if opts.control is not None:
                self._control = bound.pop()
            self._sockets = [(s.name, sock) for s, sock in zip(opts.services, bound,
                                                               strict=True)]
        except BaseException:
            self.index.close()
            raise
        self.matcher = Matcher(self.index)

    def bound(self) -> list[tuple[str, Address]]:
        """Each service and where it is served (the port the OS gave, for port 0)."""
        out = []
        for name, sock in self._sockets:
            host, port = sock.getsockname()[:2]
            out.append((name, Address(host, port)))
        return out

    @property
    def control_address(self) -> Address | None:
        if self._control is None:
            return None
        host, port = self._control.getsockname()[:2]
        return Address(host, port)

    def start_lines(self) -> list[str]:
        """What to say at start: the capture, the listeners, what cannot be replayed."""
        assert self.index is not None
        lines = [f"replaying {self.index.path} ({len(self.index.entries)} exchanges)"]
        for name, address in self.bound():
            lines.append(f"  {name:<24} http://{address}")
        if self.options.listen is not None:
            lines.append(f"  {'forward proxy':<24} http://{self.options.listen}")
            confdir = self.options.confdir
            flag = "" if confdir == Path("~/.mitmproxy").expanduser() else \
                f" --confdir {shlex.quote(str(confdir))}"
            lines.append(f'  clients: eval "$(tapproxy env --listen {self.options.listen}'
                         f'{flag})"')
        if self.control_address is not None:
            lines.append(f"  {'control API':<24} http://{self.control_address}")
        return lines + self.warnings()

    def warnings(self) -> list[str]:
        """What cannot be replayed as recorded: bodies kept in part, a capture cut short."""
        assert self.index is not None
        index = self.index
        lines = []
        cut = [e for e in index.entries if e.answer is not None]
        if cut:
            shown = ", ".join(f"#{e.number}" for e in cut[:8]) + ("…" if len(cut) > 8 else "")
            lines.append(f"{len(cut)} recorded response(s) kept only in part (over "
                         "--max-body): never served")
            lines.append(cut_end(f"  cut, they get a 502: {shown}", 80))
        if index.problem:
            lines.append(index.problem)
        return lines

    async def start(self) -> None:
        assert self.matcher is not None
        on_miss = None
        if self.options.record_missing or self.options.missing_later:
            from tapproxy.replay.missing import MissingRecorder

            self.missing = MissingRecorder(self.options, self.matcher)
            on_miss = self.missing.forward
        self.listeners = ReplayListeners(self.matcher, self.options.latency, self.log,
                                         on_miss)
        try:
            for name, sock in self._sockets:
                await self.listeners.serve(name, sock)
            if self._control is not None:
                await self.listeners.serve_control(self._control)
            if self.options.listen is not None:
                from tapproxy.replay.forward import ForwardReplay

                self.forward = ForwardReplay(self.options, self.listeners,
                                             lambda name: dict(self.bound()).get(name))
                await self.forward.start()
        except BaseException:
            await self.stop()
            raise

    async def add_service(self, name: str, port: int) -> Address:
        """Serve the recorded service `name` on `port` (0: a free one) while running;
        ReplayError for a name the capture never called or a port in use."""
        assert self.index is not None and self.listeners is not None
        if name not in self.index.by_callee:
            raise ReplayError(f"service {name}: no exchange to {name} in "
                              f"{self.index.path} (recorded: {', '.join(self.index.callees)})")
        [sock] = bind_listeners([(f"service {name}", Address("127.0.0.1", port))])
        self._sockets.append((name, sock))
        await self.listeners.serve(name, sock)
        host, bound = sock.getsockname()[:2]
        return Address(host, bound)

    async def stop(self) -> ReplayStats:
        if self.forward is not None:
            await self.forward.stop()
            self.forward = None
        if self.listeners is not None:
            await self.listeners.stop()
        for _, sock in self._sockets:
            sock.close()
        if self._control is not None:
            self._control.close()
        if self.missing is not None:
            await self.missing.close()
        assert self.matcher is not None and self.index is not None
        self.index.close()
        # Without the forward proxy only the services given a listener could be asked.
        served = None if self.options.listen is not None else frozenset(
            s.name for s in self.options.services)
        return self.matcher.stats(served)


def _with_services(opts: ReplayOptions, services: tuple) -> ReplayOptions:
    from dataclasses import replace

    return replace(opts, services=services)


def _check_distinct(wanted: list[tuple[str, Address]]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for what, a in wanted:
        if a.port and (a.host, a.port) in seen:
            raise ReplayError(f"{seen[(a.host, a.port)]} and {what} both listen on {a}: "
                              "give each its own port")
        seen[(a.host, a.port)] = what


class BackgroundReplay:
    """A Replay on an event loop in a daemon thread (for the pytest plugin)."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="tapproxy-replay", daemon=True)

    def start(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.replay.start(), self._loop).result(60)
        except BaseException:
            self._close_loop()
            raise

    def run(self, coro, timeout: float = 30):
        """Run a coroutine on the replay's loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable, *args):
        """Run `fn(*args)` on the replay's loop (its state is the loop's alone)."""
        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def stop(self) -> ReplayStats | None:
        if not self._thread.is_alive():
            return None
        try:
            return asyncio.run_coroutine_threadsafe(self.replay.stop(), self._loop).result(60)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
