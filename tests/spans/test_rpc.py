"""gRPC spans per the OpenTelemetry RPC conventions
(https://opentelemetry.io/docs/specs/semconv/rpc/grpc/): name, attributes, status."""

from __future__ import annotations

import pytest

from tapproxy.capture import ErrorInfo, Exchange, Headers, Party, Request, Response, Timing
from tapproxy.spans.semconv import client_attributes, server_attributes, span_status
from tests.spans.build import T0


def _call(code: int | None, message: str | None = None, *, trailers_only: bool = False,
          error: ErrorInfo | None = None) -> Exchange:
    status = [] if code is None else [("grpc-status", str(code))]
    if message is not None:
        status.append(("grpc-message", message))
    headers = [("content-type", "application/grpc")] + (status if trailers_only else [])
    response = None if error else Response(
        200, "", "HTTP/2.0", Headers(tuple(headers)), b"",
        trailers=None if trailers_only else Headers(tuple(status)))
    return Exchange(
        id="g1", caller=Party("web", "proxy-auth", "127.0.0.1:40000"),
        callee=Party("orders", "host", "127.0.0.1:50051"),
        request=Request("POST", "http", "127.0.0.1", 50051, "/shop.v1.Orders/Get", "HTTP/2.0",
                        Headers((("content-type", "application/grpc"), ("te", "trailers")))),
        response=response, error=error, timing=Timing(T0, T0 + 1, T0 + 2, T0 + 3))


def test_grpc_client_span_is_named_after_the_method_with_rpc_attributes():
    name, attrs = client_attributes(_call(0))
    assert name == "shop.v1.Orders/Get"
    assert attrs == {
        "rpc.system.name": "grpc",
        "rpc.method": "shop.v1.Orders/Get",
        "rpc.response.status_code": "OK",
        "server.address": "127.0.0.1",
        "server.port": 50051,
        "network.protocol.name": "http",
        "network.protocol.version": "2",
        "tapproxy.exchange_id": "g1",
    }
    assert span_status(_call(0), "client") == ("unset", "")


@pytest.mark.parametrize(
    ("x", "client", "server"),
    [
        # Every status but OK is a client error; only server failures are server errors.
        pytest.param(_call(5, "no order 7"), ("error", "no order 7"), ("unset", ""),
                     id="not-found"),
        pytest.param(_call(13, "broke%20after%202"), ("error", "broke after 2"),
                     ("error", "broke after 2"), id="internal-in-trailers"),
        pytest.param(_call(4, trailers_only=True), ("error", ""), ("error", ""),
                     id="deadline-trailers-only"),
    ],
)
def test_grpc_span_status_comes_from_grpc_status(x, client, server):
    assert span_status(x, "client") == client
    assert span_status(x, "server") == server
    _, c = client_attributes(x)
    _, s = server_attributes(x)
    assert c["error.type"] == c["rpc.response.status_code"]
    assert ("error.type" in s) == (server[0] == "error")
    assert s["client.address"] == "127.0.0.1"


def test_grpc_call_cut_before_any_status_is_an_error_named_by_its_kind():
    x = _call(None, error=ErrorInfo("client_closed", "stream reset by client (CANCEL)"))
    assert span_status(x, "client")[0] == "error"
    _, attrs = client_attributes(x)
    assert attrs["error.type"] == "client_closed" and "rpc.response.status_code" not in attrs
