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


class H2Replay(asyncio.Protocol):
    """One HTTP/2 connection whose every stream is answered by `answer`."""

    def __init__(self, callee: str | None, answer: Answerer) -> None:
        self.callee = callee
        self.answer = answer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self._requests: dict[int, tuple[list, bytearray]] = {}
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
                self._requests[event.stream_id] = (event.headers, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self._requests:
                    self._requests[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                if event.stream_id in self._requests:
                    task = asyncio.ensure_future(self._respond(event.stream_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            elif isinstance(event, h2.events.StreamReset):
                self._requests.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                self._window.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and self.transport:
                self.transport.close()
        self._flush()

    async def _respond(self, stream_id: int) -> None:
        raw, body = self._requests.pop(stream_id)
        pseudo = {k: v for k, v in raw if k.startswith(b":")}
        headers = Headers.from_raw(tuple((k, v) for k, v in raw if not k.startswith(b":")))
        method = pseudo.get(b":method", b"GET").decode("latin-1")
        target = pseudo.get(b":path", b"/").decode("utf-8", "surrogateescape")
        a: Answer = await self.answer(self.callee, method, target, headers, bytes(body))
        with contextlib.suppress(h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            fields = [(":status", str(a.status))]
            fields += [(k.lower(), v) for k, v in a.headers]
            ends = not a.body and not a.trailers
            self.conn.send_headers(stream_id, fields, end_stream=ends)
            self._flush()
            if not ends:
                await self._send_body(stream_id, a.body, end=not a.trailers)
                if a.trailers:
                    self.conn.send_headers(stream_id, [(k.lower(), v) for k, v in a.trailers],
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
