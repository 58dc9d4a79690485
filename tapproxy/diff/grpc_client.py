"""One gRPC call re-sent over HTTP/2 (h2c, or TLS with ALPN h2) for `--against`: the
recorded request's headers and messages as they were, the live answer's headers, body
and trailers (where gRPC puts its status), which aiohttp cannot read.

The h2 library (mitmproxy's HTTP/2 state machine, already installed with it) drives the
connection; sockets are asyncio's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tapproxy.capture.grpc import iter_messages
from tapproxy.capture.model import ErrorInfo, Exchange, GrpcMessage, Headers, Response, Timing

__all__ = ["send_grpc"]

# Set by the connection (or h2) itself, or meaningless on a new connection.
_NOT_SENT = {"host", "content-length", "connection", "keep-alive", "proxy-connection",
             "proxy-authorization", "transfer-encoding", "upgrade", "te"}


async def send_grpc(base: str, x: Exchange, timeout: float) -> tuple[Response | None,
                                                                       Timing, ErrorInfo | None,
                                                                       tuple[GrpcMessage, ...]]:
    """`x`'s call sent to `base`: (response, timing, error, both directions' messages)."""
    start = time.time_ns()
    try:
        response, first = await asyncio.wait_for(_call(base, x), timeout)
    except TimeoutError:
        return None, Timing(start, error_at=time.time_ns()), ErrorInfo("timeout", "timed out"), ()
    except (OSError, h2.exceptions.ProtocolError, ConnectionError) as e:
        kind = "refused" if isinstance(e, ConnectionRefusedError) else "other"
        return None, Timing(start, error_at=time.time_ns()), ErrorInfo(kind, str(e)), ()
    end = time.time_ns()
    sent = tuple(m for m in x.grpc_messages if m.from_client)
    got = tuple(GrpcMessage(False, compressed, end, data)
                for compressed, data in iter_messages(response.body))
    return response, Timing(start, start, first, end), None, sent + got


async def _call(base: str, x: Exchange) -> tuple[Response, int]:
    parts = urlsplit(base)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    context = None
    if tls:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        conn.initiate_connection()
        q = x.request
        headers = [(b":method", q.method.encode()), (b":scheme", parts.scheme.encode()),
                   (b":authority", parts.netloc.encode()),
                   (b":path", (parts.path.rstrip("/") + q.path).encode()), (b"te", b"trailers")]
        headers += [(k.lower(), v) for k, v in q.headers.raw
                    if k.lower().decode("latin-1") not in _NOT_SENT
                    and not k.startswith(b":") and not k.lower().startswith(b"x-tapproxy-")]
        stream = conn.get_next_available_stream_id()
        pending = q.body
        sent = not pending
        conn.send_headers(stream, headers, end_stream=sent)
        status, answer, trailers, body, first = 0, (), None, bytearray(), 0
        ended = False
        while not ended:
            # Send what the windows allow; the rest once the server opens them.
            while pending and (room := min(conn.local_flow_control_window(stream),
                                           conn.max_outbound_frame_size)) > 0:
                conn.send_data(stream, pending[:room])
                pending = pending[room:]
            if not pending and not sent:
                conn.end_stream(stream)
                sent = True
            await writer.drain()
            data = await reader.read(65536)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    first = time.time_ns()
                    status = int(dict(event.headers)[b":status"])
                    answer = tuple((k, v) for k, v in event.headers if not k.startswith(b":"))
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = tuple(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionResetError(f"the server reset the call ({event.error_code})")
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            writer.write(conn.data_to_send())
        response = Response(status, "", "HTTP/2.0", Headers.from_raw(answer), bytes(body),
                            trailers=None if trailers is None else Headers.from_raw(trailers))
        return response, first
    finally:
        writer.close()
