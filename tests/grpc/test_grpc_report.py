"""gRPC calls in the HTML report: real calls through the real proxy, each message a tick
on its call's waterfall row, decoded (protobuf, no schema) with trailers in the detail."""

from __future__ import annotations

import grpc

from tests.conftest import run_cli
from tests.grpc.conftest import run_calls
from tests.report.test_html_report import blocks


def test_grpc_messages_are_ticks_and_decoded(echo, start_echo, start_proxy, tmp_path):
    server = start_echo()
    proxy = start_proxy()
    with grpc.insecure_channel(server.target,
                               options=[("grpc.http_proxy", proxy.url_as("cli"))]) as ch:
        run_calls(echo, ch)
    proxy.stop()
    out = tmp_path / "r.html"
    r = run_cli("report", proxy.capture, "-o", out)
    assert r.returncode == 0, r.stderr
    data = blocks(out.read_text())
    summary, details = data["tap-summary"], data["tap-details"]
    f = {name: i for i, name in enumerate(summary["fields"])}
    unary = next(i for i, d in enumerate(details) if '1: "hi"' in str(d.get("grpc")))
    row, detail = summary["rows"][unary], details[unary]
    assert [(to_server, kind) for _, to_server, kind in row[f["ticks"]]] == [(1, "g"), (0, "g")]
    assert [d for d, _, _ in detail["grpc"]] == [1, 0]
    assert '1: "echo hi"' in detail["grpc"][1][2]
    assert detail["grpc_status"] == "OK (0)"
    assert ["x-echo-trailer", "t1"] in detail["response"]["trailers"]
    assert detail["response"]["body"] == "(gRPC: see the messages)"
    streamed = [r for r in summary["rows"] if r[f["target"]].endswith("/ServerStream")]
    assert len(streamed[0][f["ticks"]]) == 5  # a request and four answers
