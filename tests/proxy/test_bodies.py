"""Which responses stream through a tap: the recorder's one-pass reading of the headers
gives the same answer as reading them for gRPC, then for streaming."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import tflow

from tapproxy.proxy.bodies import GrpcTap, is_grpc, response_streams, response_tap

_NAMES = st.sampled_from([b"Content-Type", b"content-length", b"Content-Length", b"Server",
                          b"CONTENT-TYPE", b"Transfer-Encoding"])
_VALUES = st.sampled_from([b"application/grpc", b"application/grpc+proto", b"application/json",
                           b" text/event-stream; charset=utf-8", b"TEXT/EVENT-STREAM",
                           b"application/grpc-web", b"0", b"10", b" 2048 ", b"abc", b"",
                           b"chunked", b"nginx"])


@given(fields=st.lists(st.tuples(_NAMES, _VALUES), max_size=5),
       status=st.sampled_from([200, 101, 204, 304, 500]),
       method=st.sampled_from(["GET", "HEAD", "POST"]))
def test_one_pass_agrees_with_grpc_then_streaming(fields, status, method):
    flow = tflow.tflow(resp=True)
    flow.request.method = method
    flow.response = http.Response.make(status)
    flow.response.headers = http.Headers(fields)
    max_body = 1024
    expected = ("grpc" if is_grpc(flow.response.headers) else
                "tap" if response_streams(flow, max_body) else None)
    tap = response_tap(flow, max_body)
    got = None if tap is None else "grpc" if isinstance(tap, GrpcTap) else "tap"
    assert got == expected
