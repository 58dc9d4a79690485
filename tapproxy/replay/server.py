"""The replay listeners: one server per recorded service, answering from the index, and
the control API that opens and closes tests.

HTTP/1 is aiohttp's; a connection that opens with the HTTP/2 preface (h2c, gRPC's
insecure channel) goes to `h2server`. A request is matched (`Matcher`), then answered
with the recorded response: streamed in pieces when it was streamed, after the recorded
wait with `--latency recorded`, a WebSocket's server messages in recorded order. A miss
gets a 502 whose body is the near-miss table, which also goes to the log; so does an
answer that cannot be given whole (a body kept only in part).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from aiohttp import WSMsgType, web
from aiohttp.web_server import Server

from tapproxy.capture.grpc import iter_messages
from tapproxy.capture.model import Exchange, WebSocketEnd, WebSocketMessage, is_grpc_content_type
from tapproxy.errors import TapproxyError
from tapproxy.replay.answer import Answer, answer_for, failure_answer, grpc_failure, pieces
from tapproxy.replay.h2server import H2Replay, Sniffer
from tapproxy.replay.index import Entry
from tapproxy.replay.matcher import Matcher
from tapproxy.replay.matching import RequestView

__all__ = ["TEST_HEADER", "ReplayListeners", "view_of"]

TEST_HEADER = "x-tapproxy-test"
_WS_WAIT = 30.0  # seconds a recorded client message is waited for


def view_of(method: str, raw_target: str, headers, body: bytes) -> RequestView:
    """An incoming request as matching reads it (`raw_target`: path and query as sent)."""
    path, _, query = raw_target.partition("?")
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    return RequestView(method, path, query, ctype, headers.get("content-encoding"), body)


class ReplayListeners:
    """The per-service servers, on sockets bound beforehand (see options.bind_listeners)."""

    def __init__(self, matcher: Matcher, latency: bool = False,
                 log: Callable[[str], None] = lambda line: None,
                 on_miss=None) -> None:
        self.matcher = matcher
        self.index = matcher.index
        self.latency = latency
        self.log = log
        self.on_miss = on_miss  # async (callee, request, view, body) → Answer | None
        self._servers: list[asyncio.AbstractServer] = []
        self._handlers: list[Server] = []
        self._runners: list[web.AppRunner] = []

    async def serve(self, callee: str | None, sock: socket.socket) -> None:
        """Answer requests for `callee` on `sock` (None: any recorded service)."""
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await self.handle(request, callee)
            except TapproxyError as e:  # the capture changed, a missing one not written
                return await self._send(request, self.failed(e))

        handler = Server(handle, access_log=None)
        self._handlers.append(handler)
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(
            lambda: Sniffer(handler, lambda: H2Replay(callee, self.answer_h2,
                                                      self.grpc_ahead)), sock=sock))

    async def serve_control(self, sock: socket.socket) -> None:
        """The control API: POST /tests/start and /tests/end {"name"}, GET /stats."""
        app = web.Application()
        app.router.add_post("/tests/start", self._start_test)
        app.router.add_post("/tests/end", self._end_test)
        app.router.add_get("/stats", self._stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runners.append(runner)

    async def _test_name(self, request: web.Request) -> str | None:
        with contextlib.suppress(ValueError):
            name = (await request.json()).get("name")
            return name if isinstance(name, str) and name else None
        return None

    async def _start_test(self, request: web.Request) -> web.Response:
        name = await self._test_name(request)
        if name is None:
            return web.json_response({"error": "expected {\"name\": \"...\"}"}, status=400)
        self.matcher.start_test(name)
        return web.json_response({"name": name}, status=201)

    async def _end_test(self, request: web.Request) -> web.Response:
        name = await self._test_name(request)
        if name is None:
            return web.json_response({"error": "expected {\"name\": \"...\"}"}, status=400)
        misses = self.matcher.end_test(name)
        return web.json_response({"name": name, "misses": [list(m.lines) for m in misses]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.matcher.stats().as_json())

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for h in self._handlers:
            with contextlib.suppress(Exception):
                await h.shutdown(0.5)
        for s in self._servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        for r in self._runners:
            await r.cleanup()

    # -- one request ---------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest, callee: str | None) -> web.StreamResponse:
        body = await request.read()
        view = view_of(request.method, request.raw_path, request.headers, body)
        test = self.matcher.current_test(request.headers.get(TEST_HEADER))
        entry = self.matcher.find(view, callee, test)
        if entry is None:
            answer = None
            if self.on_miss is not None:
                answer = await self.on_miss(callee, request, view, body)
            return await self._send(request, answer or self.miss_answer(view, callee, test))
        if entry.websocket and entry.answer is None \
                and request.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(request, entry, self.index.exchange(entry))
        return await self._send(request, self.entry_answer(entry, view))

    def failed(self, e: TapproxyError) -> Answer:
        """A 502 for what went wrong in tapproxy itself, said once in the log too."""
        self.log(f"tapproxy replay: {e}")
        return failure_answer(502, f"tapproxy replay: {e}", "error")

    async def answer_h2(self, callee: str | None, method: str, target: str, headers,
                        body: bytes) -> Answer:
        """The answer to one HTTP/2 stream (h2c: gRPC with an insecure channel)."""
        try:
            answer = self._answer_h2(callee, method, target, headers, body)
        except TapproxyError as e:
            answer = self.failed(e)
        if answer.status == 502 and is_grpc_content_type(headers.get("content-type")):
            answer = grpc_failure(answer)
        if self.latency and answer.wait_ns:
            await asyncio.sleep((answer.wait_ns + answer.spread_ns) / 1e9)
        return answer

    def _answer_h2(self, callee: str | None, method: str, target: str, headers,
                   body: bytes) -> Answer:
        view = view_of(method, target, headers, body)
        test = self.matcher.current_test(headers.get(TEST_HEADER))
        entry = self.matcher.find(view, callee, test)
        if entry is None:
            return self.miss_answer(view, callee, test)
        return self.entry_answer(entry, view)

    def grpc_ahead(self, callee: str | None, method: str, target: str, headers,
                   body: bytes) -> tuple[Answer, int] | None:
        """For a gRPC call still sending: the recorded call whose request began with
        `body`, and how much of its answer the recording had sent before the client's
        next message (0: none; then None). Lets a bidirectional call that waits for each
        answer go on; the whole request is matched, and counted, when it ends."""
        if callee is None or not is_grpc_content_type(headers.get("content-type")):
            return None
        index = self.index
        test = self.matcher.current_test(headers.get(TEST_HEADER))
        found = index.route_entries(callee, method, target.partition("?")[0])
        own = [i for i in found if index.entries[i].test == test] if test else []
        n_client = sum(1 for _ in iter_messages(body))
        for i in (*own, *found):
            e = index.entries[i]
            if e.answer is not None:
                continue
            try:
                x = index.exchange(e)
            except TapproxyError:
                return None  # said when the call ends and is answered
            if not x.grpc_messages or not x.request.body.startswith(body):
                continue
            upto = seen = 0
            for m in x.grpc_messages:
                if m.from_client:
                    seen += 1
                    if seen > n_client:
                        break
                else:
                    upto += 5 + len(m.data)  # the message with its length prefix
            return (answer_for(x), upto) if upto else None
        return None

    def miss_answer(self, view: RequestView, callee: str | None, test: str | None) -> Answer:
        """A 502 with the near-miss table, which goes to the log too."""
        miss = self.matcher.miss(view, callee, test)
        for line in miss.lines:
            self.log(line)
        return failure_answer(502, "\n".join(miss.lines))

    def entry_answer(self, entry: Entry, view: RequestView) -> Answer:
        """The recorded answer of `entry`; a 502 saying why when it cannot be given whole."""
        if entry.answer is None:
            return answer_for(self.index.exchange(entry))
        text = (f"tapproxy replay: cannot answer {view.method} {view.path} with "
                f"recorded exchange #{entry.number}: {entry.answer}")
        self.log(text)
        return failure_answer(502, text, "cut")

    async def _send(self, request: web.BaseRequest, a: Answer) -> web.StreamResponse:
        if self.latency and a.wait_ns:
            await asyncio.sleep(a.wait_ns / 1e9)
        if not a.streamed:
            resp = web.Response(status=a.status, reason=a.reason or None, body=a.body)
            resp.headers.extend(a.headers)
            return resp
        resp = web.StreamResponse(status=a.status, reason=a.reason or None)
        resp.headers.extend(a.headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        parts = pieces(a)
        gap = a.spread_ns / 1e9 / max(1, len(parts) - 1) if self.latency else 0
        for i, piece in enumerate(parts):
            if gap and i:
                await asyncio.sleep(gap)
            await resp.write(piece)
        await resp.write_eof()
        return resp

    async def _websocket(self, request: web.BaseRequest, entry: Entry,
                         x: Exchange) -> web.StreamResponse:
        """The handshake as recorded, then the server's messages in recorded order, each
        client message the recording saw waited for before what followed it."""
        protocols = ()
        if x.response is not None and (p := x.response.headers.get("sec-websocket-protocol")):
            protocols = (p,)
        ws = web.WebSocketResponse(protocols=protocols, autoclose=False)
        await ws.prepare(request)  # type: ignore[arg-type]
        previous = None
        for record in self.index.websocket_records(entry):
            if isinstance(record, WebSocketEnd):
                await ws.close(code=record.close_code or 1000,
                               message=record.close_reason.encode())
                return ws
            assert isinstance(record, WebSocketMessage)
            if self.latency and previous is not None:
                await asyncio.sleep(max(0, record.timestamp - previous) / 1e9)
            previous = record.timestamp
            if record.from_client:
                try:
                    msg = await ws.receive(timeout=_WS_WAIT)
                except TimeoutError:
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    return ws
            elif record.is_text:
                await ws.send_str(record.content.decode("utf-8", "replace"))
            else:
                await ws.send_bytes(record.content)
        await ws.close()
        return ws
