"""The forward-proxy side of a replay: mitmproxy, with an addon that answers every
request from the capture and never connects to an upstream.

Clients with `HTTP_PROXY`/`HTTPS_PROXY` (and gRPC's `grpc_proxy`) reach it as they
reached `tapproxy record`; HTTPS is intercepted with the same CA (`--confdir`), and
HTTP/2 with trailers comes for free, so a gRPC client over TLS sees the recorded
messages and grpc-status. The target the client asked for names the service when the
capture saw it called there; else the request is matched against every service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tapproxy.capture.model import is_grpc_content_type
from tapproxy.errors import ReplayError, TapproxyError
from tapproxy.replay.answer import Answer, failure_answer, grpc_failure
from tapproxy.replay.options import ReplayOptions
from tapproxy.replay.server import TEST_HEADER, ReplayListeners, view_of
from tapproxy.supervisor.options import Address

__all__ = ["ForwardReplay"]


class _Ready:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def running(self) -> None:
        self.event.set()


class _Answering:
    """mitmproxy addon: every request answered from the capture (a 502 on a miss)."""

    def __init__(self, listeners: ReplayListeners,
                 listener_of: Callable[[str], Address | None]) -> None:
        self.listeners = listeners
        self.listener_of = listener_of

    async def request(self, flow) -> None:
        from mitmproxy import http

        listeners = self.listeners
        matcher, index = listeners.matcher, listeners.index
        q = flow.request
        callee = index.targets.get((q.host.lower(), q.port))
        if (q.headers.get("upgrade") or "").lower() == "websocket":
            # mitmproxy relays a WebSocket only with a server behind it: the service's
            # replay listener is that server (it matches the handshake itself).
            where = self.listener_of(callee) if callee else None
            if where is not None:
                q.scheme, q.host, q.port = "http", where.host, where.port
                return
            flow.response = _response(http, failure_answer(
                502, "tapproxy replay: a WebSocket is replayed by its service's listener; "
                f"{callee or 'its service'} has none (--service NAME@PORT)", "error"),
                q.http_version)
            return
        body = q.raw_content or b""
        view = view_of(q.method, q.path, q.headers, body)
        test = matcher.current_test(q.headers.get(TEST_HEADER))
        entry = matcher.find(view, callee, test)
        try:
            if entry is None:
                answer = listeners.miss_answer(view, callee, test)
            else:
                answer = listeners.entry_answer(entry, view)
        except TapproxyError as e:  # the capture changed while it was replayed
            answer = listeners.failed(e)
        if answer.status == 502 and is_grpc_content_type(q.headers.get("content-type")):
            answer = grpc_failure(answer)
        if listeners.latency and answer.wait_ns:
            await asyncio.sleep((answer.wait_ns + answer.spread_ns) / 1e9)
        flow.response = _response(http, answer, q.http_version)


def _response(http, a: Answer, version: str):
    resp = http.Response.make(a.status, a.body,
                              [(k.encode(), v.encode("utf-8", "surrogateescape"))
                               for k, v in a.headers])
    if a.reason:
        resp.reason = a.reason
    # make() sets a Content-Length; HTTP/2 frames a body without one, and a gRPC client
    # would see one the service never sent (in a Trailers-Only answer, as metadata).
    if version.startswith("HTTP/2") and not any(k.lower() == "content-length"
                                                 for k, _ in a.headers):
        del resp.headers["content-length"]
    if a.trailers is not None:
        resp.trailers = http.Headers([(k.encode(), v.encode("utf-8", "surrogateescape"))
                                      for k, v in a.trailers])
    return resp


class ForwardReplay:
    """mitmproxy in regular (forward) mode on `--listen`, answering from the listeners'
    matcher, on the running event loop."""

    def __init__(self, opts: ReplayOptions, listeners: ReplayListeners,
                 listener_of: Callable[[str], Address | None]) -> None:
        self.options = opts
        self.listeners = listeners
        self.listener_of = listener_of
        self._master = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from mitmproxy import options
        from mitmproxy.master import Master

        from tapproxy.proxy.certs import ca_cert_path
        from tapproxy.proxy.runner import mitmproxy_addons

        assert self.options.listen is not None
        ca_cert_path(self.options.confdir)  # made now, or one line naming the directory
        logging.getLogger("mitmproxy").setLevel(logging.ERROR)
        opts = options.Options()
        self._master = master = Master(opts, event_loop=asyncio.get_running_loop())
        ready = _Ready()
        master.addons.add(*mitmproxy_addons(), _Answering(self.listeners, self.listener_of),
                          ready)
        listen = self.options.listen
        opts.update(mode=[f"regular@{listen.host}:{listen.port}"],
                    confdir=str(self.options.confdir),
                    # No upstream exists: never connect before the request is answered.
                    connection_strategy="lazy", upstream_cert=False)
        self._task = asyncio.create_task(master.run(), name="tapproxy-replay-forward")
        waiter = asyncio.create_task(ready.event.wait())
        await asyncio.wait([self._task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not ready.event.is_set():
            waiter.cancel()
            self._task.result()
            raise ReplayError("mitmproxy stopped while the forward proxy started")
        for s in master.addons.get("proxyserver").servers:
            if s.last_exception is not None:
                await self.stop()
                raise ReplayError(f"--listen: cannot listen on {listen}: "
                                  f"{s.last_exception}")

    async def stop(self) -> None:
        if self._master is not None:
            self._master.shutdown()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._task
        self._master = self._task = None
