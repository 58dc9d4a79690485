"""Shared fixtures: real aiohttp services and the real embedded proxy on loopback ports.

Services and the proxy each run on their own event loop in a background thread, so a
test can drive them with any real client: curl (subprocess), requests, httpx, aiohttp.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from aiohttp import web
from hypothesis import settings

from tapproxy.capture import Exchange, Record, open_capture
from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.options import Address, RecordOptions, parse_address

pytest_plugins = ("pytester",)
collect_ignore = ["plugin_suite"]  # the suite test_pytest_plugin.py runs inside pytest

ROOT = Path(__file__).resolve().parent.parent

# CI runs the property tests on a fixed seed, so a submission's verdict does not depend on
# the draw; on a developer's machine they keep exploring new examples each run.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
TAPPROXY = [sys.executable, "-m", "tapproxy.cli"]

# --- skips the README's claims cannot afford ------------------------------------------
#
# Tests behind README claims (the client matrix, a full disk, Chromium) need tools and
# permissions. A tool scripts/setup installs is promised there: under CI=true its absence
# fails the test, elsewhere it skips. A kernel permission (mount, a network namespace) is
# the machine's to give: it skips, and the run's summary lists every such skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_PERMISSION = "needs a kernel permission: "
_PERMISSION_SECTION = "skipped for want of a kernel permission"


def missing_tool(what: str) -> NoReturn:
    """A tool scripts/setup installs is missing: skip, or under CI=true fail."""
    if IN_CI:
        pytest.fail(f"{what}; CI=true, where scripts/setup must have installed it",
                    pytrace=False)
    pytest.skip(what)


def require_tool(name: str, installed_as: str) -> str:
    """The path of `name` on PATH; missing, as `missing_tool` says (`installed_as`: what
    scripts/setup installs it as)."""
    found = shutil.which(name)
    if found is None:
        missing_tool(f"{name} is not installed (scripts/setup installs {installed_as})")
    return found


def missing_permission(what: str) -> NoReturn:
    """Skip for want of a kernel permission; the run's summary lists it."""
    pytest.skip(_PERMISSION + what)


def pytest_terminal_summary(terminalreporter) -> None:
    listed = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        if _PERMISSION in reason:
            listed.append(f"{report.nodeid}: {reason.split(_PERMISSION, 1)[1]}")
    if listed:
        terminalreporter.section(_PERMISSION_SECTION)
        for line in listed:
            terminalreporter.line(line)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_HANDED: set[int] = set()
_RNG = random.Random()  # its own: hypothesis seeds the global one per example


def free_port() -> int:
    """A loopback port free now, handed out once per process, below the kernel's
    ephemeral range and in this xdist worker's own slice of it: a port the kernel picks
    (bind to 0) can be taken by any outgoing connection's local end before the test
    binds it, and two workers could pick the same one (seen as "address already in
    use" in CI). The port after it is left free too, for "consecutive ports" tests."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    low = 10000
    span = max(2, (_EPHEMERAL_LOW - low) // count)
    start = low + (int(worker) if worker.isdigit() else 0) % count * span
    for _ in range(500):
        port = _RNG.randrange(start, start + span - 1)
        if port in _HANDED or port + 1 in _HANDED:
            continue
        if _bindable(port) and _bindable(port + 1):
            _HANDED.add(port)
            return port
    with socket.socket() as s:  # the slice is full: as the kernel picks
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro)` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass
class Service:
    name: str
    port: int
    runner: web.AppRunner
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


class Services:
    """Starts aiohttp applications on free loopback ports (optionally with TLS)."""

    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self.started: list[Service] = []

    def start(self, name: str, app: web.Application, ssl_context=None, port: int = 0) -> Service:
        async def go() -> Service:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port or free_port(), ssl_context=ssl_context)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return Service(name, bound, runner, "https" if ssl_context else "http")

        svc = self._loop.run(go())
        self.started.append(svc)
        return svc

    def stop_all(self) -> None:
        for svc in self.started:
            self._loop.run(svc.runner.cleanup())
        self.started.clear()


# TAPPROXY_TEST_WORKERS=N: every proxy the fixtures start runs N worker processes
# (`record --workers N`), to run a suite against them; tests of the in-process
# recorder's internals (handle.recorder) do not apply there.
TEST_WORKERS = int(os.environ.get("TAPPROXY_TEST_WORKERS", "1") or 1)
# For a test of the in-process recorder's internals (its writer's queue, its hooks).
in_process_recorder = pytest.mark.skipif(
    TEST_WORKERS > 1, reason="reads the in-process recorder (TAPPROXY_TEST_WORKERS > 1)")


class WorkersHandle:
    """RecordingProxy's interface (as the fixtures use it) over BackgroundWorkers."""

    recorder = None  # in other processes

    def __init__(self, opts: RecordOptions) -> None:
        from tapproxy.proxy.embedded import BackgroundWorkers

        self.options = opts
        self.background = BackgroundWorkers(opts)

    @property
    def control(self) -> Address | None:
        c = self.background.control
        if c is None:
            return None
        return parse_address(c.url.removeprefix("http://"))

    async def start(self) -> None:
        await asyncio.to_thread(self.background.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.background.stop)

    async def add_reverse(self, spec) -> None:
        await asyncio.to_thread(self.background.add_reverse, spec)

    def flush(self) -> None:
        assert self.background.control is not None
        self.background.control.flush()

    def records_so_far(self) -> list[Record]:
        from tapproxy.capture.merge import merge_interleaved

        parts = [w.part for w in self.background._group.workers if w.part.exists()]
        merged = self.options.output.with_name(f"{self.options.output.stem}.so-far.tap")
        merge_interleaved(parts, merged)
        with open_capture(merged) as r:
            records = list(r)
        merged.unlink()
        return records


@dataclass
class Proxy:
    """A running RecordingProxy and the ways a test talks to it."""

    options: RecordOptions
    handle: RecordingProxy | WorkersHandle
    loop: LoopThread
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"http://{self.options.listen}"

    def url_as(self, caller: str) -> str:
        return f"http://{caller}:tap@{self.options.listen}"

    @property
    def control_url(self) -> str:
        return f"http://{self.handle.control}"

    @property
    def capture(self) -> Path:
        return self.options.output

    @property
    def ca_file(self) -> Path:
        return self.options.confdir / "mitmproxy-ca-cert.pem"

    def env(self, caller: str | None = None) -> dict[str, str]:
        from tapproxy.proxy.certs import env_exports

        env = dict(os.environ)
        env.update(env_exports(self.options.listen, self.options.confdir, caller))
        return env

    def flush(self) -> None:
        if isinstance(self.handle, WorkersHandle):
            self.handle.flush()
            return
        assert self.handle.recorder is not None
        self.handle.recorder.writer.flush()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.loop.run(self.handle.stop())

    def records(self) -> list[Record]:
        """Everything written so far (flushes first; the proxy keeps running)."""
        if not self.stopped:
            self.flush()
        if isinstance(self.handle, WorkersHandle) and not self.stopped:
            return self.handle.records_so_far()
        with open_capture(self.capture) as r:
            return list(r)

    def exchanges(self) -> list[Exchange]:
        return [r for r in self.records() if isinstance(r, Exchange)]

    def records_checked(self) -> list[Record]:
        """Every record so far, asserting the capture ends on a whole record (with
        workers, each part is read whole to be merged)."""
        if isinstance(self.handle, WorkersHandle):
            return self.records()
        self.flush()
        with open_capture(self.capture) as reader:
            records = list(reader)
            assert not reader.truncated, reader.problem
        return records

    def stats(self) -> dict:
        """The recorder's live figures (GET /stats: summed over workers)."""
        if isinstance(self.handle, WorkersHandle):
            assert self.handle.background.control is not None
            return self.handle.background.control.stats()
        assert self.handle.recorder is not None
        return self.handle.recorder.stats()


class TcpServer:
    """A loopback TCP server running `serve(conn)` for each connection, in a thread."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            self._serve(conn)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def tcp_server() -> Iterator[Callable[..., TcpServer]]:
    started: list[TcpServer] = []

    def start(serve) -> TcpServer:
        started.append(TcpServer(serve))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def services(loop_thread: LoopThread) -> Iterator[Services]:
    s = Services(loop_thread)
    yield s
    s.stop_all()


@pytest.fixture(scope="session")
def confdir(tmp_path_factory) -> Path:
    """One interception CA for the session (creating it costs a second)."""
    return tmp_path_factory.mktemp("mitmconf")


@pytest.fixture
def start_proxy(tmp_path: Path, confdir: Path) -> Iterator[Callable[..., Proxy]]:
    """Start the real embedded proxy: start_proxy(services=..., reverse=..., ...)."""
    proxies: list[Proxy] = []
    loops: list[LoopThread] = []

    def start(**overrides) -> Proxy:
        opts = RecordOptions(
            output=overrides.pop("output", tmp_path / f"run{len(proxies)}.tap"),
            listen=Address("127.0.0.1", free_port()),
            control=Address("127.0.0.1", free_port()),
            confdir=confdir,
            **overrides,
        )
        lt = LoopThread()
        loops.append(lt)
        if TEST_WORKERS > 1:
            opts = dataclasses.replace(opts, workers=TEST_WORKERS)
            handle = WorkersHandle(opts)
        else:
            handle = RecordingProxy(opts)
        lt.run(handle.start(), timeout=90)
        p = Proxy(opts, handle, lt)
        proxies.append(p)
        return p

    yield start
    for p in proxies:
        p.stop()
    for lt in loops:
        lt.close()


@pytest.fixture
def proxy(start_proxy) -> Proxy:
    return start_proxy()


def run_cli(*args: str, env: dict | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `tapproxy` command and capture its output."""
    return subprocess.run([*TAPPROXY, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def wait_for(predicate: Callable[[], object], timeout: float = 20, what: str = "condition"):
    """Poll until `predicate()` is truthy (for start-up of subprocesses, not for timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
