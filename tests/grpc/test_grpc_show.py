"""`tapproxy show` on a capture of real gRPC calls: statuses in the table, --errors,
trailers and decoded messages in --exchange (raw and by name), JSON."""

from __future__ import annotations

import json
import os

import grpc

from tests.conftest import run_cli
from tests.grpc.conftest import run_calls


def _record(echo, start_echo, start_proxy):
    server = start_echo()
    proxy = start_proxy()
    with grpc.insecure_channel(server.target,
                               options=[("grpc.http_proxy", proxy.url_as("cli"))]) as ch:
        run_calls(echo, ch)
    proxy.stop()
    return proxy.capture


def test_show_lists_grpc_statuses_errors_and_decoded_messages(echo, start_echo, start_proxy,
                                                              tmp_path):
    capture = _record(echo, start_echo, start_proxy)

    wide = {**os.environ, "COLUMNS": "120"}  # paths whole (at 80 columns they are cut)
    out = run_cli("show", capture, env=wide)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "/taptest.Echo/" in line]
    assert len(rows) == 7
    assert "200 NOT_FOUND" in rows[1] and "200 INTERNAL" in rows[4]
    assert "NOT_FOUND" not in rows[0] and "200" in rows[0]

    errors = run_cli("show", capture, "--errors", env=wide).stdout
    failed = [line.split()[0] for line in errors.splitlines() if "/taptest.Echo/" in line]
    assert failed == ["2", "3", "5"]  # NOT_FOUND, the deadline, INTERNAL mid-stream

    one = run_cli("show", capture, "--exchange", "1").stdout
    assert "grpc-status: OK (0)" in one
    assert "trailers:" in one and "x-echo-trailer: t1" in one
    assert '1: "hi"' in one and '1: "echo hi"' in one  # decoded without a schema
    assert "3 {" in one and "2: 0x3fe0000000000000" in one  # nested Inner, double as fixed64

    named = run_cli("show", capture, "--exchange", "1",
                    "--proto-descriptor", echo.descriptor_set).stdout
    assert 'text: "hi"' in named and "numbers: 300" in named
    assert "flag: true" in named and "ratio: 0.5" in named

    aborted = run_cli("show", capture, "--exchange", "5").stdout
    assert "grpc-status: INTERNAL (13): broke after 2" in aborted
    assert aborted.count("← #") == 2 and aborted.count("→ #") == 1

    rows_json = [json.loads(line)
                 for line in run_cli("show", capture, "--json").stdout.splitlines()]
    grpc_rows = [r for r in rows_json if "grpc" in r]
    names = [r["grpc"]["status_name"] for r in grpc_rows]
    # The deadline: the client's cancel (no status), unless the server's own deadline
    # (from grpc-timeout) answered first.
    assert names[2] in (None, "DEADLINE_EXCEEDED")
    assert names[:2] + names[3:] == ["OK", "NOT_FOUND", "OK", "INTERNAL", "OK", "OK"]
    assert [r["failed"] for r in grpc_rows] == [False, True, True, False, True, False, False]


def test_a_bad_proto_descriptor_is_one_line_and_exit_2(tmp_path, echo):
    bad = tmp_path / "not.desc"
    bad.write_bytes(b"\xff\xff\xff")
    capture = tmp_path / "none.tap"
    from tapproxy.capture.format import new_header
    from tapproxy.capture.writer import CaptureWriter
    CaptureWriter(capture, new_header()).close()
    out = run_cli("show", capture, "--exchange", "1", "--proto-descriptor", bad)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"tapproxy: error: {bad}: not a protobuf descriptor set "
                                  "(protoc --descriptor_set_out=FILE)")


def test_spans_of_grpc_calls_follow_the_rpc_conventions(echo, start_echo, start_proxy,
                                                        tmp_path):
    capture = _record(echo, start_echo, start_proxy)
    out_file = tmp_path / "spans.jsonl"
    out = run_cli("spans", capture, "--out", out_file)
    assert out.returncode == 0, out.stderr
    spans = [s for line in out_file.read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]

    def attrs(s):
        return {a["key"]: next(iter(a["value"].values())) for a in s["attributes"]}

    client = [(s["name"], attrs(s).get("rpc.response.status_code"),
               s.get("status", {}).get("code")) for s in spans if s["kind"] == 3]
    # The deadline: the client cancelled (no status), or the server's deadline came first.
    assert client[2] in (("taptest.Echo/Unary", None, 2),
                         ("taptest.Echo/Unary", "DEADLINE_EXCEEDED", 2))
    assert client[:2] + client[3:] == [
        ("taptest.Echo/Unary", "OK", None),
        ("taptest.Echo/Unary", "NOT_FOUND", 2),
        ("taptest.Echo/ServerStream", "OK", None),
        ("taptest.Echo/ServerStream", "INTERNAL", 2),
        ("taptest.Echo/ClientStream", "OK", None),
        ("taptest.Echo/Bidi", "OK", None),
    ]
    server = {attrs(s).get("rpc.response.status_code"): s.get("status", {}).get("code")
              for s in spans if s["kind"] == 2}
    assert server["NOT_FOUND"] is None and server["INTERNAL"] == 2  # only server faults
    assert all(attrs(s)["rpc.system.name"] == "grpc" for s in spans if s["kind"] in (2, 3))

    tree = run_cli("spans", capture, "--tree")
    assert tree.returncode == 0, tree.stderr
    lines = [line for line in tree.stdout.splitlines() if "taptest.Echo/" in line]
    assert len(lines) == 7
    assert "NOT_FOUND" in lines[1] and "INTERNAL" in lines[4] and "OK" in lines[0]
    assert "client_closed" in lines[2] or "DEADLINE_EXCEEDED" in lines[2]


def test_compressed_messages_are_flagged_and_decoded(echo, start_echo, start_proxy):
    server = start_echo()
    proxy = start_proxy()
    with grpc.insecure_channel(server.target, compression=grpc.Compression.Gzip,
                               options=[("grpc.http_proxy", proxy.url)]) as ch:
        resp = echo.pb2_grpc.EchoStub(ch).Unary(echo.pb2.Req(text="squeeze " * 20), timeout=20)
    assert resp.text == "echo " + "squeeze " * 20
    proxy.stop()
    [x] = proxy.exchanges()
    sent = [m for m in x.grpc_messages if m.from_client]
    assert [m.compressed for m in sent] == [True]
    assert x.request.headers.get("grpc-encoding") == "gzip"

    shown = run_cli("show", proxy.capture, "--exchange", "1").stdout
    assert "compressed (gzip)" in shown
    assert '1: "' + "squeeze " * 20 + '"' in shown.replace("\n    ", "")
