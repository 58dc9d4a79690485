"""Cleartext HTTP/2 (h2c) through the real proxy: with prior knowledge to the forward
listener, inside a CONNECT tunnel and to a reverse listener, recorded as HTTP/2; and the
h2c upgrade path, which mitmproxy answers in HTTP/1.1 as before."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from aiohttp import web

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port
from tests.proxy.test_protocols import _H2_WRITERS, _serve_h2


@pytest.fixture
def h2c_upstream(loop_thread):
    """A plaintext service that speaks only HTTP/2 with prior knowledge."""
    async def start():
        return await asyncio.start_server(_serve_h2, "127.0.0.1", 0)

    server = loop_thread.run(start())
    yield server.sockets[0].getsockname()[1]

    async def stop():
        server.close()
        for w in list(_H2_WRITERS):
            w.close()
        await server.wait_closed()

    loop_thread.run(stop())


def _only_h2c() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)


def test_h2c_prior_knowledge_to_a_reverse_listener(start_proxy, h2c_upstream):
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("h2svc", f"http://127.0.0.1:{h2c_upstream}",
                                             Address("127.0.0.1", port)),))
    with _only_h2c() as c:
        r = c.get(f"http://127.0.0.1:{port}/rev")
    assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "h2 /rev")
    [x] = proxy.exchanges()
    assert (x.request.http_version, x.response.http_version) == ("HTTP/2.0", "HTTP/2.0")
    assert (x.callee.name, x.request.path, x.response.body) == ("h2svc", "/rev", b"h2 /rev")


def _h2c_get(to: Address, authority: str, path: str,
             extra: tuple[tuple[str, str], ...] = ()) -> tuple[str, bytes]:
    """One GET over a fresh h2c connection (prior knowledge): (status, body)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", authority),
               (":path", path), *extra]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers, end_stream=True)
    status, body = "", b""
    with socket.create_connection((to.host, to.port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                    return status, body
            sock.sendall(conn.data_to_send())
    return status, body


def test_h2c_prior_knowledge_spoken_to_the_forward_listener(start_proxy, h2c_upstream):
    # As a proxy client speaking HTTP/2 would: the target in :authority, the caller in
    # Proxy-Authorization.
    proxy = start_proxy()
    auth = "Basic " + base64.b64encode(b"fwd:tap").decode()
    status, body = _h2c_get(proxy.options.listen, f"127.0.0.1:{h2c_upstream}", "/fwd",
                            (("proxy-authorization", auth),))
    assert (status, body) == ("200", b"h2 /fwd")
    [x] = proxy.exchanges()
    assert x.request.http_version == "HTTP/2.0"
    assert (x.caller.name, x.request.port, x.status) == ("fwd", h2c_upstream, 200)


def test_h2c_prior_knowledge_inside_a_connect_tunnel(start_proxy, h2c_upstream):
    proxy = start_proxy()
    out = subprocess.run(
        ["curl", "-q", "-sS", "--fail", "--proxytunnel", "-x", proxy.url_as("tunnel"),
         "--http2-prior-knowledge", "-w", " %{http_version}",
         f"http://127.0.0.1:{h2c_upstream}/tun"],
        capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "h2 /tun 2"), out.stderr
    [x] = [x for x in proxy.exchanges() if x.request.method != "CONNECT"]
    assert (x.request.http_version, x.caller.name, x.request.path) == ("HTTP/2.0", "tunnel",
                                                                        "/tun")


def test_h2c_upgrade_is_still_answered_in_http1(proxy, services):
    seen = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(request.headers.get("upgrade"))
        return web.Response(text="plain")

    app = web.Application()
    app.router.add_get("/up", hello)
    svc = services.start("up", app)
    out = subprocess.run(["curl", "-q", "-sS", "--fail", "-x", proxy.url, "--http2",
                          "-w", " %{http_version}", f"{svc.url}/up"],
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "plain 1.1"), out.stderr
    assert seen == [None]  # mitmproxy's disable_h2c strips the upgrade, as before
    [x] = proxy.exchanges()
    assert (x.request.http_version, x.status) == ("HTTP/1.1", 200)
