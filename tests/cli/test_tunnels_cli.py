"""Tunnels (connections not parsed as HTTP) in `show`, `show --json`, HAR export and spans.

The capture is recorded by the real proxy: one HTTP exchange and a tunnel to a TCP
server that speaks first.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, Tunnel, open_capture
from tests.conftest import run_cli, wait_for
from tests.proxy.test_tunnels import (
    GREETING,
    connect_through,
    greet_then_echo,
    recv_exactly,
)


@pytest.fixture
def capture(start_proxy, services, tcp_server) -> Path:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/hello", hello)
    svc = services.start("web", app)
    proxy = start_proxy()
    requests.post(f"{proxy.control_url}/tests/start", json={"name": "test_mixed"}, timeout=5)
    assert requests.get(f"{svc.url}/hello", proxies={"http": proxy.url_as("client")},
                        timeout=10).text == "hi"
    server = tcp_server(greet_then_echo)
    with connect_through(proxy, server.port, caller="mailer") as s:
        assert recv_exactly(s, len(GREETING)) == GREETING
        s.sendall(b"QUIT\r\n")
        assert recv_exactly(s, 6) == b"QUIT\r\n"
    wait_for(lambda: any(isinstance(r, Tunnel) for r in proxy.records()), timeout=10,
             what="the tunnel record")
    proxy.stop()
    return proxy.capture


def test_show_lists_a_tunnel_as_a_row_of_its_own(capture):
    out = run_cli("show", capture, env={**os.environ, "COLUMNS": "120"})  # cells whole
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if re.match(r"^(\d+|t\d+)\s", line)]
    assert len(rows) == 2
    assert re.match(r"^1\s+test_mixed\s+client → 127\.0\.0\.1\s+GET\s+/hello\s+200\s", rows[0])
    assert re.match(r"^t1\s+test_mixed\s+mailer → 127\.0\.0\.1\s+TCP\s+server_first ↑6 ↓26"
                    r"\s+TUNNEL\s+[\d.]+\s+26$", rows[1])


def test_show_json_includes_tunnels_with_their_kind(capture):
    out = run_cli("show", capture, "--json")
    assert out.returncode == 0, out.stderr
    exchange, tunnel = (json.loads(line) for line in out.stdout.splitlines())
    assert (exchange["kind"], exchange["n"], exchange["status"]) == ("exchange", 1, 200)
    assert tunnel["kind"] == "tunnel" and tunnel["n"] == "t1"
    assert (tunnel["reason"], tunnel["why"]) == ("server_first", "the server spoke first")
    assert (tunnel["bytes_from_client"], tunnel["bytes_from_server"]) == (6, 26)
    assert base64.b64decode(tunnel["first_from_server_base64"]) == GREETING + b"QUIT\r\n"
    # With its process (this one, which sent it), as every local caller.
    assert tunnel["caller"] == {"name": "mailer", "source": "proxy-auth",
                                "address": tunnel["caller"]["address"],
                                "pid": os.getpid(), "command": tunnel["caller"]["command"]}
    assert tunnel["test"] == "test_mixed" and tunnel["error"] is None


def test_show_one_tunnel_in_full(capture):
    out = run_cli("show", capture, "--exchange", "t1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("tunnel t1  mailer (proxy-auth) → 127.0.0.1 (host) at 127.0.0.1:")
    assert "not parsed as HTTP: the server spoke first [server_first]" in out.stdout
    assert "client → server (6 bytes):\n  QUIT\\r\\n\n" in out.stdout
    assert "server → client (26 bytes):\n  220 tcp-echo ready\\r\\nQUIT\\r\\n\n" in out.stdout


def test_errors_leave_out_a_tunnel_that_did_not_fail(capture):
    out = run_cli("show", capture, "--errors", "--json")
    assert (out.returncode, out.stdout) == (0, "")


def test_har_export_skips_tunnels_and_spans_ignore_them(capture, tmp_path):
    har = tmp_path / "run.har"
    out = run_cli("export", capture, "--har", har)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"1 exchanges written to {har}"
    [entry] = json.loads(har.read_text())["log"]["entries"]
    assert entry["request"]["method"] == "GET"

    spans = run_cli("spans", capture, "--out", tmp_path / "spans.json")
    assert spans.returncode == 0, spans.stderr
    names = [s["name"] for line in (tmp_path / "spans.json").read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"]
             for s in ss["spans"]]
    assert sorted(n for n in names if n != "test_mixed") == ["GET", "GET"]  # client and server
    with open_capture(capture) as reader:
        kinds = [type(r) for r in reader if isinstance(r, Exchange | Tunnel)]
    assert kinds == [Exchange, Tunnel]
