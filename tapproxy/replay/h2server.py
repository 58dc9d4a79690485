"""HTTP/2 with prior knowledge (h2c) on a service's listener: how gRPC clients with an
insecure channel speak. aiohttp serves HTTP/1 only, so each connection is sniffed: one
that opens with the HTTP/2 preface is served here (with the `h2` library mitmproxy
also uses), any other is handed to aiohttp as it is.

A stream's request is matched once it has ended (its messages are then all there), and
answered with the recorded headers, body and trailers, so a gRPC client sees the
recorded messages and grpc-status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tapproxy.capture.model import Headers
from tapproxy.replay.answer import Answer

__all__ = ["PREFACE", "H2Replay", "Sniffer"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: (callee, method, raw target, headers, body) → the answer; run on the event loop.
type Answerer = Callable[[str | None, str, str, Headers, bytes], asyncio.Future]
#: The same, for a stream not ended yet → (the answer, how much of its body to send now).
type Ahead = Callable[[str | None, str, str, Headers, bytes], tuple[Answer, int] | None]


class Sniffer(asyncio.Protocol):
    """Reads a connection's first bytes, then hands it to the protocol they call for."""

    def __init__(self, http1: Callable[[], asyncio.Protocol],
                 http2: Callable[[], asyncio.Protocol]) -> None:
        self._http1, self._http2 = http1, http2
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head = self._buffer[:len(PREFACE)]
        if len(head) < len(PREFACE) and PREFACE.startswith(head):
            return  # not enough yet to tell
        proto = (self._http2 if head == PREFACE else self._http1)()
        assert self._transport is not None
        self._transport.set_protocol(proto)
        proto.connection_made(self._transport)
        proto.data_received(self._buffer)

    def connection_lost(self, exc) -> None:
        pass


@dataclass
class _Stream:
    """A request stream: what came so far, and what of an answer went ahead of its end."""

    headers: list
    body: bytearray = field(default_factory=bytearray)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ahead: Answer | None = None  # the recorded answer whose first messages were sent
    sent: int = 0  # how many bytes of its body

    def request(self) -> tuple[str, str, Headers]:
        pseudo = {k: v for k, v in self.headers if k.startswith(b":")}
        headers = Headers.from_raw(tuple((k, v) for k, v in self.headers
                                         if not k.startswith(b":")))
        return (pseudo.get(b":method", b"GET").decode("latin-1"),
                pseudo.get(b":path", b"/").decode("utf-8", "surrogateescape"), headers)


class H2Replay(asyncio.Protocol):
    """One HTTP/2 connection whose every stream is answered by `answer`.

    `ahead` serves bidirectional gRPC calls that wait for an answer before their next
    message: given what a stream sent so far, it names the recorded answer and how much
    of its body the recording had sent by then, which goes out before the stream ends.
    """

    def __init__(self, callee: str | None, answer: Answerer, ahead: Ahead | None = None) -> None:
        self.callee = callee
        self.answer = answer
        self.ahead = ahead
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._window = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc) -> None:
        for t in self._tasks:
            t.cancel()
        self._window.set()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._streams[event.stream_id] = _Stream(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.body.extend(event.data)
                    if self.ahead is not None and not event.stream_ended:
                        self._spawn(self._send_ahead(event.stream_id, stream))
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                if event.stream_id in self._streams:
                    self._spawn(self._respond(event.stream_id))
            elif isinstance(event, h2.events.StreamReset):
                self._streams.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                self._window.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and self.transport:
                self.transport.close()
        self._flush()

    async def _send_ahead(self, stream_id: int, stream: _Stream) -> None:
        async with stream.lock:
            method, target, headers = stream.request()
            plan = self.ahead(self.callee, method, target, headers, bytes(stream.body))
            if plan is None:
                return
            a, upto = plan
            if stream.ahead is not None and a.body[:stream.sent] != stream.ahead.body[
                    :stream.sent]:
                return  # another recording fits better now; what went out stays
            with contextlib.suppress(h2.exceptions.ProtocolError,
                                     h2.exceptions.StreamClosedError):
                if stream.ahead is None:
                    self._send_headers(stream_id, a, end=False)
                stream.ahead = a
                if upto > stream.sent:
                    await self._send_body(stream_id, a.body[stream.sent:upto], end=False)
                    stream.sent = upto

    async def _respond(self, stream_id: int) -> None:
        stream = self._streams[stream_id]
        async with stream.lock:
            del self._streams[stream_id]
            method, target, headers = stream.request()
            a: Answer = await self.answer(self.callee, method, target, headers,
                                          bytes(stream.body))
            with contextlib.suppress(h2.exceptions.ProtocolError,
                                     h2.exceptions.StreamClosedError):
                if stream.ahead is None:
                    await self._send_whole(stream_id, a)
                else:
                    await self._send_rest(stream_id, a, stream.sent)

    def _send_headers(self, stream_id: int, a: Answer, end: bool) -> None:
        fields = [(":status", str(a.status))] + [(k.lower(), v) for k, v in a.headers]
        self.conn.send_headers(stream_id, fields, end_stream=end)
        self._flush()

    async def _send_whole(self, stream_id: int, a: Answer) -> None:
        ends = not a.body and not a.trailers
        self._send_headers(stream_id, a, end=ends)
        if not ends:
            await self._send_body(stream_id, a.body, end=not a.trailers)
            if a.trailers:
                self.conn.send_headers(stream_id, [(k.lower(), v) for k, v in a.trailers],
                                       end_stream=True)
                self._flush()

    async def _send_rest(self, stream_id: int, a: Answer, sent: int) -> None:
        """The end of an answer whose head went ahead: the rest of its messages, then
        its trailers; or, if the whole request matched nothing, the miss as its status."""
        trailers = a.trailers
        if a.status == 200 and trailers is not None:
            await self._send_body(stream_id, a.body[sent:], end=False)
        else:
            trailers = tuple((k, v) for k, v in a.headers
                             if k.lower() in ("grpc-status", "grpc-message")) \
                or (("grpc-status", "2"),)
        self.conn.send_headers(stream_id, [(k.lower(), v) for k, v in trailers],
                               end_stream=True)
        self._flush()

    async def _send_body(self, stream_id: int, body: bytes, end: bool) -> None:
        view = memoryview(body)
        while view:
            room = min(self.conn.local_flow_control_window(stream_id),
                       self.conn.max_outbound_frame_size)
            if room <= 0:
                self._window.clear()
                await self._window.wait()
                if self.transport is None or self.transport.is_closing():
                    return
                continue
            chunk, view = view[:room], view[room:]
            self.conn.send_data(stream_id, bytes(chunk), end_stream=end and not view)
            self._flush()
        if end and not body:
            self.conn.end_stream(stream_id)
            self._flush()
