"""A recording proxy for a test harness: run in a thread of its own, or reached through
the control API of one already running (a compose sidecar). Synchronous on purpose: a
pytest plugin calls it between tests, with no event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

from tapproxy.errors import CaptureError, ProxyError
from tapproxy.supervisor.options import Address, RecordOptions, parse_address

__all__ = ["BackgroundProxy", "BackgroundWorkers", "ControlClient", "EmbeddedControl",
           "background_proxy"]


class ControlClient:
    """The control API of a running proxy (`http://host:port`), over plain HTTP."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        # One kept-alive connection: a test opens and closes a test case, two calls
        # each test; a new connection (and urllib's handler chain) per call cost ~1 ms
        # each. Never through a proxy: http.client ignores HTTP_PROXY, and the harness
        # may run with it pointing at this very proxy.
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # fixtures may call from threads of their own

    def _call(self, method: str, route: str, body: dict | None = None) -> dict:
        return json.loads(self._fetch(method, route, body) or b"{}")

    def _fetch(self, method: str, route: str, body: dict | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        with self._lock:
            try:
                status, text = self._exchange(method, route, data, headers)
            except (http.client.HTTPException, OSError) as e:
                self.close()
                raise ProxyError(f"control API {self.url}: cannot reach it "
                                 f"({_reason(e)})") from None
        if status >= 400:
            text = text.decode("utf-8", "replace").strip()
            with contextlib.suppress(ValueError, KeyError, TypeError):
                text = json.loads(text)["error"]  # its answer is {"error": "..."}
            path = route.partition("?")[0]
            raise ProxyError(f"control API {self.url}{path}: {status} {text}")
        return text

    def _exchange(self, method: str, route: str, data: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port,
                                                    timeout=self.timeout)
        try:
            self._conn.request(method, route, body=data, headers=headers)
            r = self._conn.getresponse()
            out = r.status, r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            # The API closed the kept connection while it was idle (aiohttp's keep-alive
            # timeout): the request never reached it, so send it once more on a new one.
            return self._exchange(method, route, data, headers)
        if r.will_close:
            self.close()
        return out

    def close(self) -> None:
        """Close the kept connection (the next call opens another)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def start_test(self, name: str) -> None:
        self._call("POST", "/tests/start", {"name": name})

    def end_test(self, name: str, outcome: str) -> int:
        """Close the test case; how many requests went through the proxy while it was open."""
        return int(self._call("POST", "/tests/end", {"name": name, "outcome": outcome})
                   .get("requests", 0))

    def name_service(self, name: str, address: str) -> None:
        self._call("POST", "/services", {"name": name, "address": address})

    def name_process(self, pid: int, name: str, descendants: bool = False) -> bool:
        """Name process `pid` of this host `name`, as caller and callee; False when the
        proxy is not on this host (a sidecar, another host): it cannot see the process."""
        import psutil

        try:
            started = psutil.Process(pid).create_time()
        except psutil.Error:
            return False
        try:
            self._call("POST", "/services", {"name": name, "pid": pid, "started": started,
                                             "descendants": descendants})
        except ProxyError as e:
            if ": 409 " in str(e):
                return False
            raise
        return True

    def name_host(self, name: str, host: str) -> None:
        """Name `host` at any port `name` (`record --service NAME=HOST`)."""
        self._call("POST", "/services", {"name": name, "host": host})

    def test_records(self, name: str) -> bytes:
        """The test's records so far, as a capture of their own (read with open_capture)."""
        return self._fetch("GET", f"/tests/exchanges?test={quote(name, safe='')}")

    def flush(self) -> None:
        self._call("POST", "/flush")

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def proxy_address(self) -> Address:
        """The forward proxy's address, as the proxy reports it (any-host → the API's host)."""
        listen = parse_address(str(self.stats().get("listen", "")), "listen address")
        if listen.host in ("0.0.0.0", "::", ""):
            return Address(urlsplit(self.url).hostname or "127.0.0.1", listen.port)
        return listen


class EmbeddedControl(ControlClient):
    """The control API of a proxy running in this process (BackgroundProxy): a test is
    opened and closed right here, in the caller's thread, as the API would (the same
    test cases, outcomes, request counts and errors), without an HTTP request each time:
    two a test cost a millisecond or more of the test run. So is a flush; the rest
    goes over HTTP.

    Opening is done when `start_test` returns, before the test sends anything; the
    closed test case is handed to the proxy's event loop to record, in order with the
    exchanges before it, and before any flush or stop asked for after it.
    """

    def __init__(self, url: str, recorder, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(url)
        from tapproxy.supervisor.testcases import TestCaseError

        self._recorder = recorder
        self._loop = loop
        self._test_case_error = TestCaseError

    def start_test(self, name: str) -> None:
        try:
            self._recorder.tests.open(name)
        except self._test_case_error as e:
            raise ProxyError(f"control API {self.url}/tests/start: 409 {e}") from None

    def end_test(self, name: str, outcome: str) -> int:
        try:
            case, requests = self._recorder.tests.end(name, outcome or None)
        except self._test_case_error as e:
            raise ProxyError(f"control API {self.url}/tests/end: 404 {e}") from None
        self._loop.call_soon_threadsafe(self._record_closed, case)
        writer = self._recorder.writer
        if writer.failure is not None:  # as the API answers once the capture stopped
            raise ProxyError(f"control API {self.url}/tests/end: "
                             f"{507 if writer.disk_full else 500} {writer.failure}")
        return requests

    def flush(self) -> None:
        """Every record so far in the file: the writer's own wait, in this thread (a test
        checked against a contract flushes once it ends; the API would add a round trip
        and a thread of its own)."""
        writer = self._recorder.writer
        try:
            writer.flush()
        except CaptureError:
            raise ProxyError(f"control API {self.url}/flush: "
                             f"{507 if writer.disk_full else 500} {writer.failure}") from None

    def _record_closed(self, case) -> None:
        """On the proxy's loop: the test case into the capture."""
        pending = self._recorder.test_closed(case)
        if pending is not None:
            # Queued already; the wait for room is backpressure for connections, not
            # for the harness, which the API would hold up here for nothing.
            pending.close()


def _reason(e: BaseException) -> str:
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    return str(e) or type(e).__name__


class BackgroundProxy:
    """The embedded RecordingProxy on an event loop in a daemon thread.

        proxy = BackgroundProxy(opts)
        proxy.start()   # ProxyError if a listener cannot be bound
        proxy.control   # a ControlClient for it
        proxy.stop()    # the capture is complete on disk
    """

    def __init__(self, opts: RecordOptions) -> None:
        from tapproxy.proxy.runner import RecordingProxy

        if opts.control is None:
            raise ProxyError("an embedded proxy needs its control API")
        self.options = opts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="tapproxy-proxy", daemon=True)
        self._proxy = RecordingProxy(opts)
        self.control: ControlClient | None = None

    @property
    def listen(self) -> Address:
        return self.options.listen

    @property
    def capture(self) -> Path:
        return self.options.output

    def start(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(60)
        except BaseException:
            self._close_loop()
            raise
        self.control = EmbeddedControl(f"http://{self._proxy.control}",
                                       self._proxy.recorder, self._loop)

    def add_reverse(self, spec) -> None:
        """A reverse listener (a ReverseSpec) in front of a service, while running."""
        asyncio.run_coroutine_threadsafe(self._proxy.add_reverse(spec), self._loop).result(60)

    def add_service_process(self, pid: int, name: str, descendants: bool = True) -> None:
        """Name process `pid` (and with `descendants` its children) `name`, as caller
        and as callee (no proxy env needed)."""
        namer = self._proxy.recorder.processes if self._proxy.recorder else None
        if namer is not None:
            namer.add_service(pid, name, descendants)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._proxy.stop(), self._loop).result(60)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class BackgroundWorkers:
    """BackgroundProxy's interface over `opts.workers` worker processes
    (supervisor.workers): the capture is the parts merged, once stopped."""

    def __init__(self, opts: RecordOptions) -> None:
        from tapproxy.supervisor.workers import WorkerGroup

        if opts.control is None:
            raise ProxyError("an embedded proxy needs its control API")
        self.options = opts
        self._group = WorkerGroup(opts)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="tapproxy-workers", daemon=True)
        self._fanout = None
        self.control: ControlClient | None = None

    @property
    def listen(self) -> Address:
        return self._group.options.listen

    @property
    def capture(self) -> Path:
        return self.options.output

    def start(self) -> None:
        from tapproxy.supervisor.fanout import FanOutControl

        assert self.options.control is not None
        self._group.start()
        self._thread.start()
        fanout = FanOutControl(self._group, self.options.control)
        try:
            asyncio.run_coroutine_threadsafe(fanout.start(), self._loop).result(60)
        except BaseException:
            self.stop()
            raise
        self._fanout = fanout
        self._group.command("own_control", Address(self.options.control.host,
                                                   fanout.port or 0))
        self.control = ControlClient(f"http://{self.options.control.host}:{fanout.port}")

    def add_reverse(self, spec) -> None:
        self._group.command("add_reverse", spec)

    def add_service_process(self, pid: int, name: str, descendants: bool = True) -> None:
        self._group.command("add_service", pid, name, descendants)

    def stop(self) -> None:
        if self._fanout is not None:
            asyncio.run_coroutine_threadsafe(self._fanout.stop(), self._loop).result(60)
            self._fanout = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._group.stop()


def background_proxy(opts: RecordOptions) -> BackgroundProxy | BackgroundWorkers:
    """The embedded proxy for `opts`: one in a thread, or `opts.workers` processes."""
    return BackgroundWorkers(opts) if opts.workers > 1 else BackgroundProxy(opts)
