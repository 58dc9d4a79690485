"""mitmproxy flows to capture records: used live by the recorder and by `tapproxy import`."""

from __future__ import annotations

import dataclasses
import time

from mitmproxy import connection, ctx, http
from mitmproxy.flow import Error
from mitmproxy.net.http import url

from tapproxy.capture.grpc import merge_messages, split_messages
from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    Timing,
)
from tapproxy.proxy.bodies import body_of, grpc_frames, is_grpc

__all__ = ["CALLER_TARGET", "addressed_by_host", "classify_error", "connect_failure",
           "exchange_from_flow", "exchange_from_tls_failure"]

# flow.metadata key: (scheme, host, port) as the caller addressed a request that the
# recorder sent elsewhere (to the upstream of one of tapproxy's own reverse listeners).
CALLER_TARGET = "tapproxy.caller_target"

_NS = 1_000_000_000


def _ns(t: float | None) -> int | None:
    return None if t is None else int(t * _NS)


# mitmproxy reports failures as free text (OSError strings, h11/h2 messages); the
# recognisable fragments below were observed in tests/proxy/test_errors.py.
_ERROR_PATTERNS = (
    ("tls", ("tls", "ssl", "certificate", "handshake")),
    ("refused", ("connection refused", "connect call failed", "errno 111", "refused")),
    ("timeout", ("timed out", "timeout")),
    ("dns", ("name or service not known", "nodename nor servname", "name resolution",
             "getaddrinfo", "no address")),
    ("reset", ("connection reset", "errno 104", "broken pipe", "server closed connection",
               "server disconnected",
               "peer closed connection", "connection closed", "without sending complete message")),
    ("client_closed", ("client disconnected", "client closed",
                       "reset by client")),  # an HTTP/2 client cancelled (gRPC: deadline)
    ("protocol", ("protocol", "malformed", "invalid", "bad request", "cannot parse",
                  "bad http")),
)
# h11's words when the peer it reads from closes mid-message; which peer, the text omits.
_PEER_CLOSED = "peer closed connection"


def classify_error(message: str, request_complete: bool = True) -> str:
    """The error kind (refused, reset, timeout, tls, …) for mitmproxy's error message.

    `request_complete` False: the request had not fully arrived from the client. mitmproxy
    reads the whole request before it connects upstream, so a peer that closed then was
    the client.
    """
    m = message.lower()
    if not request_complete and _PEER_CLOSED in m:
        return "client_closed"
    for kind, needles in _ERROR_PATTERNS:
        if any(n in m for n in needles):
            return kind
    return "other"


# mitmproxy's own answer to a CONNECT it could not open upstream (layers/http, eager
# connection strategy); it then fires `http_connect_error`, never `error`.
_CONNECT_FAILED = b"Cannot connect to "
_CONNECT_ADVICE = " If you plan to redirect requests"


def connect_failure(flow: http.HTTPFlow) -> ErrorInfo | None:
    """Why a CONNECT failed to reach its server, or None if its answer was not a failure."""
    r = flow.response
    if flow.error is not None:
        message = flow.error.msg
    elif r is not None and r.status_code == 502 and r.raw_content.startswith(_CONNECT_FAILED):
        # mitmproxy's advice that follows is not part of what went wrong.
        message = r.raw_content.decode("utf-8", "replace").partition(_CONNECT_ADVICE)[0]
    else:
        return None
    return ErrorInfo(classify_error(message), message)


def addressed_by_host(flow: http.HTTPFlow) -> tuple[str, str, int]:
    """(scheme, host, port) the caller addressed, read from its Host (or :authority).

    For a request mitmproxy sent to an address other than the one the caller used (a
    reverse listener's upstream): without a Host, the listener's own address.
    """
    q, client = flow.request, flow.client_conn
    scheme = "https" if client.tls else "http"
    default = 443 if client.tls else 80
    authority = q.host_header
    if authority:
        try:
            host, port = url.parse_authority(authority, check=True)
        except ValueError:
            host, port = None, None
        if host:
            return scheme, host, port or default
    if client.sockname:
        return scheme, client.sockname[0], client.sockname[1]
    return q.scheme, q.host, q.port


def _as_addressed(flow: http.HTTPFlow) -> tuple[str, str, int]:
    """The request's target as its caller wrote it; the callee's address says where
    it went. A reverse listener's caller addressed the listener, not the service."""
    target = flow.metadata.get(CALLER_TARGET)
    if target is not None:
        return target
    q = flow.request
    if flow.client_conn.proxy_mode.type_name == "reverse":
        return addressed_by_host(flow)
    return q.scheme, q.host, q.port


def _message_parts(m: http.Message) -> tuple:
    """(headers, body, whole length, SHA-256, trailers) of a request or response."""
    body, size, sha256 = body_of(m)
    trailers = m.trailers
    return (Headers.from_raw(m.headers.fields), body, size, sha256,
            None if trailers is None else Headers.from_raw(trailers.fields))


def exchange_from_flow(
    flow: http.HTTPFlow,
    caller: Party,
    callee: Party,
    test: str | None = None,
    test_source: str | None = None,
) -> Exchange:
    """The record of a finished (or failed) flow; bodies are kept raw, as on the wire.

    A gRPC call's messages carry the times its GrpcTaps noted as they streamed by.
    """
    # On the event loop for every exchange: records are made positionally (a fifth
    # quicker than by keyword), each message's parts read in one call.
    q = flow.request
    r = flow.response
    cc, sc = flow.client_conn, flow.server_conn
    e = flow.error
    # A response cut short (stream broken mid-body) may exist alongside an error.
    response = None
    if r is not None:
        response = Response(r.status_code, r.reason, r.http_version, *_message_parts(r))
    error = None
    if e is not None:
        error = ErrorInfo(classify_error(e.msg, q.timestamp_end is not None), e.msg)
    scheme, host, port = _as_addressed(flow)
    timing = Timing(
        _ns(q.timestamp_start),  # type: ignore[arg-type]
        _ns(q.timestamp_end),
        _ns(r.timestamp_start) if r is not None else None,
        _ns(r.timestamp_end) if r is not None else None,
        _ns(cc.timestamp_start),
        _ns(cc.timestamp_tls_setup),
        _ns(sc.timestamp_start) if sc else None,
        _ns(sc.timestamp_tcp_setup) if sc else None,
        _ns(sc.timestamp_tls_setup) if sc else None,
        _ns(e.timestamp) if e is not None else None,
    )
    request = Request(q.method, scheme, host, port, q.path, q.http_version, *_message_parts(q))
    x = Exchange(flow.id, caller, callee, request, timing, response, error, test, test_source,
                 None, bool(r is not None and r.stream), flow.websocket is not None)
    # Read from mitmproxy's raw headers: the record's would be decoded for it.
    if not (is_grpc(q.headers) or (r is not None and is_grpc(r.headers))):
        return x
    t = timing
    sent = split_messages(request.body, grpc_frames(q), True, t.request_end or t.request_start)
    got = split_messages(response.body, grpc_frames(r), False,
                         t.response_end or t.response_start or t.request_start) \
        if response else []
    return dataclasses.replace(x, grpc_messages=merge_messages(sent, got))


def exchange_from_tls_failure(
    conn: connection.Client,
    host: str,
    port: int,
    caller: Party,
    callee: Party,
    test: str | None = None,
    test_source: str | None = None,
) -> Exchange:
    """The record of a client that refused the TLS handshake: a failed CONNECT to host:port."""
    start = _ns(conn.timestamp_start)
    return Exchange(
        id=conn.id, caller=caller, callee=callee,
        request=Request("CONNECT", "https", host, port, "", "HTTP/1.1"),
        timing=Timing(request_start=start, client_conn_start=start, error_at=time.time_ns()),
        error=ErrorInfo("tls", f"client TLS handshake failed: {conn.error}"),
        test=test, test_source=test_source,
    )


def name_idle_timeout(flow: http.HTTPFlow) -> None:
    """Say "timed out" where mitmproxy's idle timer, not the client, ended a silent exchange.

    mitmproxy has no upstream read timeout: its `tcp_timeout` closes the idle client
    connection and the flow ends as "Client disconnected.". A client that gives up on
    its own does so before the timer could fire, so the elapsed silence tells them apart.
    """
    e = flow.error
    if e is None or flow.response is not None or e.msg != "Client disconnected.":
        return
    timeout = ctx.options.tcp_timeout
    sc = flow.server_conn
    last = max(t for t in (flow.request.timestamp_end, flow.request.timestamp_start,
                           sc.timestamp_tcp_setup, sc.timestamp_tls_setup) if t is not None)
    if e.timestamp - last >= timeout:
        flow.error = Error(f"timed out: no response within {timeout} s (idle timeout); "
                           f"mitmproxy then said: {e.msg}", e.timestamp)
