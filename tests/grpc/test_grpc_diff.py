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


def test_against_re_sends_grpc_calls_over_http2_and_compares_statuses(
        echo, start_echo, start_proxy, capsys):
    from tapproxy.cli.compare import run_against
    from tests.conftest import free_port

    server = start_echo()
    a = record(echo, server, start_proxy, "hi", "not_found", 3)
    name = server.target  # served in this process: the callee is its address
    assert run_against(a, f"{name}=http://{name}", output_format="json", show_noise=True) == 0
    items = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["actual"]["outcome"] for i in items[:-1]] == ["200 OK", "200 NOT_FOUND",
                                                            "200 OK"]
    assert (items[-1]["pairs"], items[-1]["differing"], items[-1]["skipped"]) == (3, 0, {})

    assert run_against(a, f"{name}=http://127.0.0.1:{free_port()}") == 1  # nothing there
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows.count(["error", "(none)", "refused"]) == 3
