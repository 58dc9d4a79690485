"""One WebSocket conversation re-sent for `--against`: the recorded handshake's request
to the live target, then the client's recorded messages in recorded order, each sent
once the server messages that preceded it in the recording have come (or none came
for a while), and the server's messages collected until the conversation ends.

How it ends: a recorded close with the code 1000 or 1001 (or none) is made again by
this client, with that code, once the server's recorded messages have come; any other
code is taken as the server's own, and the server is given the wait to close with it.
Messages a server sends after this client closed are not seen.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType

from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Response,
    Timing,
    WebSocketEnd,
    WebSocketMessage,
)
from tapproxy.diff.against import transport_error
from tapproxy.diff.websocket import Conversation

__all__ = ["MESSAGE_WAIT", "converse"]

#: Seconds to wait for a server message the recording had (at most --timeout): past
#: that, it is taken as not coming.
MESSAGE_WAIT = 5.0

# Set by the client for a handshake of its own (a new key, its own version and
# extensions), or meaningless on a new connection.
_NOT_SENT = {"host", "content-length", "connection", "keep-alive", "proxy-connection",
             "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
             "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
             "sec-websocket-protocol", "sec-websocket-accept"}
# Closes a client makes: made again here, not waited for.
_CLIENT_CODES = (None, 1000, 1001, 1005, 1006)
# RFC 6455 §7.4.1: codes never sent in a close frame.
_NEVER_SENT = (1005, 1006, 1015)


class _Live:
    """The live side of one conversation as it goes: what came, and how it ended."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, xid: str, wait: float) -> None:
        self.ws, self.xid, self.wait = ws, xid, wait
        self.messages: list[WebSocketMessage] = []
        self.heard = 0  # server messages so far
        self.end: WebSocketEnd | None = None
        # Server messages waited for in vain: later counts are that many fewer (one
        # message that never comes is waited for once, not once per later message).
        self.missing = 0

    async def hear(self, until: float) -> None:
        """Read until the recording's `until` server messages have come, the server
        closed, or nothing came for `wait` seconds."""
        while self.end is None and self.heard < until - self.missing:
            try:
                msg = await self.ws.receive(timeout=self.wait)
            except TimeoutError:
                if until != math.inf:
                    self.missing = int(until - self.heard)
                return
            self._take(msg)

    def _take(self, msg: aiohttp.WSMessage) -> None:
        now = time.time_ns()
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            self.messages.append(WebSocketMessage(self.xid, False, msg.type is WSMsgType.TEXT,
                                                  data, now))
            self.heard += 1
        elif msg.type is WSMsgType.CLOSE:
            self.end = WebSocketEnd(self.xid, now, msg.data, msg.extra or "")
        elif msg.type is WSMsgType.ERROR:
            self.end = WebSocketEnd(self.xid, now, None, error=str(msg.data))
        else:  # CLOSING, CLOSED: the connection went without a close frame
            self.end = WebSocketEnd(self.xid, now, self.ws.close_code, error="closed")

    async def say(self, m: WebSocketMessage) -> None:
        opcode = WSMsgType.TEXT if m.is_text else WSMsgType.BINARY
        await self.ws.send_frame(m.content, opcode)
        self.messages.append(WebSocketMessage(self.xid, True, m.is_text, m.content,
                                              time.time_ns()))

    async def close(self, recorded: WebSocketEnd | None) -> None:
        code = recorded.close_code if recorded is not None else None
        if self.end is None and code not in _CLIENT_CODES:
            await self.hear(math.inf)  # the server's close (or what it still sends)
        if self.end is not None:
            await self.ws.close()
            return
        if code not in _CLIENT_CODES:  # the server's to make, and it did not
            self.end = WebSocketEnd(self.xid, time.time_ns(), None, error="not closed")
            await self.ws.close()
            return
        reason = recorded.close_reason if recorded is not None else ""
        await self.ws.close(code=1000 if code is None or code in _NEVER_SENT else code,
                            message=reason.encode())
        # This client's close, as recorded: how the server answers it says nothing.
        self.end = recorded


def _headers(x: Exchange) -> list[tuple[str, str]]:
    return [(k, v) for k, v in x.request.headers if k.lower() not in _NOT_SENT
            and not k.lower().startswith("x-tapproxy-")]


async def converse(base: str, x: Exchange, recorded: Conversation,
                   timeout: float) -> tuple[Exchange, Conversation | None]:
    """`x`'s handshake and `recorded`'s client messages sent to `base`: the live answer
    as an Exchange, and the live conversation (None where there was none)."""
    q = x.request
    protocols = [p.strip() for p in (q.headers.get("sec-websocket-protocol") or "").split(",")
                 if p.strip()]
    deflate = "permessage-deflate" in (q.headers.get("sec-websocket-extensions") or "")
    answer = SimpleNamespace(response=None, at=0)

    async def answered(session, context, params) -> None:  # aiohttp's trace hook
        answer.response, answer.at = params.response, time.time_ns()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(answered)
    wait = min(timeout, MESSAGE_WAIT)
    start = time.time_ns()
    live: _Live | None = None
    error = None
    async with aiohttp.ClientSession(
            trace_configs=[trace], auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding")) as session:
        try:
            ws = await asyncio.wait_for(session.ws_connect(
                base + q.path, headers=_headers(x), protocols=protocols,
                compress=15 if deflate else 0, max_msg_size=0, decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=wait)), timeout)
        except aiohttp.WSServerHandshakeError:
            ws = None  # the answer was no upgrade: its status and headers tell
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            ws, error = None, transport_error(e)
        if ws is not None:
            live = _Live(ws, f"live:{x.id}", wait)
            try:
                await _talk(live, recorded)
            except (aiohttp.ClientError, OSError) as e:  # the connection went mid-way
                if live.end is None:
                    live.end = WebSocketEnd(live.xid, time.time_ns(), None, error=str(e))
            finally:
                await ws.close()
    r = answer.response
    response = None if r is None else Response(
        r.status, r.reason or "", f"HTTP/{r.version.major}.{r.version.minor}"
        if r.version else "", Headers.from_raw(tuple(r.raw_headers)))
    timing = Timing(start, start, answer.at or None, time.time_ns())
    if response is None and error is None:
        error = ErrorInfo("other", f"no answer from {urlsplit(base).netloc}")
    if error is not None:
        response, timing = None, Timing(start, error_at=time.time_ns())
    exchange = Exchange(id=f"live:{x.id}", caller=Party("tapproxy", "service"),
                        callee=x.callee, request=q, timing=timing, response=response,
                        error=error, test=x.test, route=x.route,
                        websocket=live is not None)
    talk = None if live is None else Conversation(tuple(live.messages), live.end)
    return exchange, talk


async def _talk(live: _Live, recorded: Conversation) -> None:
    before = 0  # server messages recorded before the next client message
    for m in recorded.messages:
        if not m.from_client:
            before += 1
            continue
        await live.hear(before)
        if live.end is not None:
            return  # the server closed: nothing more can be said
        await live.say(m)
    await live.hear(before)
    await live.close(recorded.end)
