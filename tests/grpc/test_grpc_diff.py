"""`tapproxy diff` on captures of real gRPC calls: statuses and messages field by field,
by number without a schema and by name with --proto-descriptor."""

from __future__ import annotations

import contextlib
import json

import grpc

from tests.conftest import run_cli


def record(echo, server, start_proxy, text: str, mode: str, count: int):
    pb2 = echo.pb2
    proxy = start_proxy()
    with grpc.insecure_channel(server.target,
                               options=[("grpc.http_proxy", proxy.url_as("cli"))]) as ch:
        stub = echo.pb2_grpc.EchoStub(ch)
        stub.Unary(pb2.Req(text=text))
        with contextlib.suppress(grpc.RpcError):
            stub.Unary(pb2.Req(text="ghost", mode=mode))
        list(stub.ServerStream(pb2.Req(text="s", count=count)))
    proxy.stop()
    return proxy.capture


def test_grpc_calls_compare_by_status_and_message_fields(echo, start_echo, start_proxy):
    server = start_echo()
    a = record(echo, server, start_proxy, "hi", "not_found", 3)
    again = record(echo, server, start_proxy, "hi", "not_found", 3)
    b = record(echo, server, start_proxy, "ho", "", 4)

    same = run_cli("diff", a, again)
    assert same.returncode == 0, same.stdout + same.stderr

    out = run_cli("diff", a, b, "--format", "json")
    assert out.returncode == 1, out.stderr
    items = [json.loads(line) for line in out.stdout.splitlines()]
    found = [[(c["part"], c["path"], c["kind"], c.get("expected"), c.get("actual"))
              for c in i["changes"]] for i in items[:-1]]
    assert found == [
        [("request.messages", "/0/1", "changed", "hi", "ho"),
         ("response.messages", "/0/1", "changed", "echo hi", "echo ho")],
        [("grpc-status", "", "changed", "NOT_FOUND", "OK"),
         ("request.messages", "/0/3", "removed", "not_found", None),
         # a Trailers-Only answer has neither; an answer with a message, both
         ("response.header", "grpc-accept-encoding", "added", None,
          "identity, deflate, gzip"),
         ("response.trailer", "x-echo-trailer", "added", None, "t1"),
         ("response.messages", "/0", "added", None,
          {"1": "echo ghost", "3": {"1": 1, "2": 4602678819172646912}})],
        [("request.messages", "/0/2", "changed", 3, 4),  # count
         ("response.messages", "/3", "added", None, {"1": "s 3", "2": 3})],
    ]

    named = run_cli("diff", a, b, "--proto-descriptor", echo.descriptor_set)
    assert named.returncode == 1
    rows = [line.split() for line in named.stdout.splitlines()]
    assert ["req", "msg", "/0/text", '"hi"', '"ho"'] in rows
    assert ["grpc-status", "NOT_FOUND", "OK"] in rows
