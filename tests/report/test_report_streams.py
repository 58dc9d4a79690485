"""WebSocket frames in the report: a real exchange through the real proxy, its frames as
ticks on its waterfall row and listed, decoded, in its detail."""

from __future__ import annotations

import asyncio

from tapproxy.capture.model import WebSocketEnd
from tests.conftest import run_cli, wait_for
from tests.proxy.test_protocols import _chat, ws_echo_app
from tests.report.test_html_report import blocks


def test_websocket_frames_are_ticks_and_listed(services, start_proxy, tmp_path) -> None:
    svc = services.start("ws", ws_echo_app())
    proxy = start_proxy()
    assert asyncio.run(_chat(f"http://127.0.0.1:{svc.port}/ws", proxy.url_as("chat"),
                             proxy.ca_file)) == ["echo hi", b"\x02\x01\x00"]
    wait_for(lambda: any(isinstance(r, WebSocketEnd) for r in proxy.records()), timeout=10,
             what="the WebSocketEnd record")
    proxy.stop()
    out = tmp_path / "r.html"
    assert run_cli("report", proxy.capture, "-o", out).returncode == 0
    data = blocks(out.read_text())
    summary, [detail] = data["tap-summary"], data["tap-details"]
    f = {name: i for i, name in enumerate(summary["fields"])}
    [row] = summary["rows"]
    assert [(to_server, kind) for _, to_server, kind in row[f["ticks"]]] == [
        (1, "w"), (0, "w"), (1, "w"), (0, "w")]
    assert [(d, text) for d, _, text in detail["ws"]] == [
        (1, "hi"), (0, "echo hi"), (1, "(3 bytes binary)"), (0, "(3 bytes binary)")]
    # The time axis reaches the last frame, after the handshake's response.
    [test] = summary["tests"]
    assert test["end"] >= max(t for t, _, _ in row[f["ticks"]])
