"""Nothing passes unseen: connections not parsed as HTTP leave a tunnel record, and a
CONNECT that cannot reach its server is recorded as a failed exchange.

Upstreams are raw loopback TCP servers; clients are real sockets speaking CONNECT, and curl.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
from unittest.mock import ANY

import pytest
import requests
import trustme
from aiohttp import web

from tapproxy.capture import Exchange, Tunnel
from tapproxy.capture.model import TUNNEL_FIRST_BYTES
from tapproxy.supervisor.options import Address, ListenerSpec
from tests.conftest import TEST_WORKERS, free_port, wait_for

GREETING = b"220 tcp-echo ready\r\n"


def greet_then_echo(conn: socket.socket) -> None:
    """The server speaks first (like SMTP, MySQL, Redis' replicas), then echoes lines."""
    conn.sendall(GREETING)
    while data := conn.recv(65536):
        conn.sendall(data)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def answer_resp_ping(conn: socket.socket) -> None:
    """A server of a protocol tapproxy does not speak (Redis' RESP): PING → +PONG."""
    buf = b""
    while b"PING\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
    conn.sendall(b"+PONG\r\n")


def connect_through(proxy, port: int, caller: str | None = None) -> socket.socket:
    """A socket tunnelled to 127.0.0.1:port by the proxy's CONNECT, as a client library does."""
    s = socket.create_connection((proxy.options.listen.host, proxy.options.listen.port),
                                 timeout=10)
    auth = ""
    if caller:
        token = base64.b64encode(f"{caller}:tap".encode()).decode()
        auth = f"Proxy-Authorization: Basic {token}\r\n"
    s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n"
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = s.recv(n - len(buf))
        assert data, f"closed after {len(buf)} of {n} bytes"
        buf += data
    return buf


def tunnels(proxy) -> list[Tunnel]:
    return [r for r in proxy.records() if isinstance(r, Tunnel)]


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tapproxy: warning:")]


def printed_warnings(capfd) -> list[str] | None:
    """The proxy's warnings so far; None with TAPPROXY_TEST_WORKERS > 1, where they come
    from worker processes that kept the fd 2 they were started with (capfd swaps this
    process's own only)."""
    err = capfd.readouterr().err
    return warnings_in(err) if TEST_WORKERS == 1 else None


def test_a_server_that_speaks_first_leaves_a_tunnel_record(proxy, tcp_server, capfd):
    server = tcp_server(greet_then_echo)
    requests.post(f"{proxy.control_url}/tests/start", json={"name": "test_smtp"}, timeout=5)
    with connect_through(proxy, server.port, caller="mailer") as s:
        assert recv_exactly(s, len(GREETING)) == GREETING  # transparency: as the server sent
        for line in (b"HELO a\r\n", b"QUIT\r\n"):
            s.sendall(line)
            assert recv_exactly(s, len(line)) == line
    [t] = wait_for(lambda: tunnels(proxy), timeout=10, what="the tunnel record")
    assert t.reason == "server_first"
    assert (t.caller.name, t.caller.source) == ("mailer", "proxy-auth")
    assert (t.callee.name, t.callee.address) == ("127.0.0.1", f"127.0.0.1:{server.port}")
    assert (t.bytes_from_client, t.bytes_from_server) == (14, len(GREETING) + 14)
    assert t.first_from_client == b"HELO a\r\nQUIT\r\n"
    assert t.first_from_server == GREETING + b"HELO a\r\nQUIT\r\n"
    assert (t.test, t.test_source) == ("test_smtp", "control")
    assert t.error is None and not t.failed
    assert t.ended is not None and t.ended >= t.started
    assert proxy.exchanges() == []  # the CONNECT itself is not an exchange
    if (printed := printed_warnings(capfd)) is not None:
        [warning] = printed
        assert "mailer → 127.0.0.1" in warning and "the server spoke first" in warning


def test_a_client_speaking_another_protocol_leaves_a_tunnel_record(proxy, tcp_server, capfd):
    server = tcp_server(answer_resp_ping)
    ping = b"*1\r\n$4\r\nPING\r\n"
    with connect_through(proxy, server.port) as s:
        s.sendall(ping)
        assert recv_exactly(s, 7) == b"+PONG\r\n"
    [t] = wait_for(lambda: tunnels(proxy), timeout=10, what="the tunnel record")
    assert t.reason == "not_http"
    # No credentials: known by its process (this one), the lookup awaited before the
    # tunnel is named.
    assert (t.caller.name, t.caller.source) == (
        os.path.basename(os.path.realpath(sys.executable)), "process")
    assert (t.first_from_client, t.first_from_server) == (ping, b"+PONG\r\n")
    assert (t.bytes_from_client, t.bytes_from_server) == (len(ping), 7)
    assert printed_warnings(capfd) in (None, [ANY])


def test_a_long_tunnel_keeps_counts_and_only_its_first_bytes(proxy, tcp_server, capfd):
    server = tcp_server(echo)
    chunk = bytes(range(256)) * 256  # 64 KiB, not HTTP
    with connect_through(proxy, server.port) as s:
        for _ in range(32):  # 2 MiB each way, many chunks: still one warning
            s.sendall(chunk)
            assert recv_exactly(s, len(chunk)) == chunk
    [t] = wait_for(lambda: tunnels(proxy), timeout=10, what="the tunnel record")
    assert t.bytes_from_client == t.bytes_from_server == 32 * len(chunk)
    assert t.first_from_client == t.first_from_server == chunk[:TUNNEL_FIRST_BYTES]
    assert printed_warnings(capfd) in (None, [ANY])


def _closed_port() -> socket.socket:
    """A bound socket that never listens: connecting to it is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def test_a_refused_connect_is_a_failed_exchange(proxy):
    with _closed_port() as closed:
        port = closed.getsockname()[1]
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "-x",
             proxy.url_as("checkout"), f"https://127.0.0.1:{port}/orders"],
            capture_output=True, text=True, timeout=20)
    assert out.stdout == "502", (out.stdout, out.stderr)  # the client still gets the 502
    [x] = wait_for(proxy.exchanges, timeout=10, what="the failed CONNECT")
    assert isinstance(x, Exchange)
    assert (x.request.method, x.request.host, x.request.port) == ("CONNECT", "127.0.0.1", port)
    assert x.error.kind == "refused" and x.failed
    assert x.error.message.startswith(f"Cannot connect to 127.0.0.1:{port}: ")
    assert "Connect call failed" in x.error.message
    assert "If you plan" not in x.error.message  # mitmproxy's advice is not the failure
    assert x.response is None and x.status is None
    assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
    assert x.timing.error_at is not None and x.timing.response_start is None
    assert proxy.stats()["errors"] == 1


# -- hosts left out: --allow-hosts / --ignore-hosts -------------------------------------


@pytest.fixture
def tls_pair(services, tmp_path):
    """Two HTTPS services on loopback with certificates of a test CA the proxy trusts."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello over tls")

    def app() -> web.Application:
        a = web.Application()
        a.router.add_get("/hi", hello)
        return a

    return (services.start("kept", app(), ssl_context=ctx),
            services.start("left-out", app(), ssl_context=ctx), ca_file)


def curl_via(proxy, url: str, cacert, caller: str = "client") -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-q", "-sS", "--cacert", str(cacert), "-x",
                           proxy.url_as(caller), url],
                          capture_output=True, text=True, timeout=20)


def test_allow_hosts_parses_only_those_hosts_and_records_the_others_as_tunnels(
        start_proxy, tls_pair, services, capfd):
    kept, left_out, test_ca = tls_pair

    async def echo_body(request: web.Request) -> web.Response:
        return web.Response(body=await request.read() * 2)

    app = web.Application()
    app.router.add_post("/echo", echo_body)
    plain = services.start("plain", app)
    proxy = start_proxy(allow_hosts=(rf"^127\.0\.0\.1:{kept.port}$",), upstream_ca=test_ca)
    # Intercepted: the client trusts the proxy's CA.
    assert curl_via(proxy, f"{kept.url}/hi", proxy.ca_file).stdout == "hello over tls"
    # Not intercepted: the client sees the service's own certificate (only the test CA is
    # trusted, so an interception would fail the handshake).
    out = curl_via(proxy, f"{left_out.url}/hi", test_ca)
    assert out.stdout == "hello over tls", out.stderr
    # Plain HTTP, which mitmproxy parses whatever its host options say, stays out too.
    assert requests.post(f"{plain.url}/echo", data=b"12345", timeout=10,
                         proxies={"http": proxy.url_as("poster")}).content == b"1234512345"
    records = wait_for(lambda: (r := proxy.records()) and len(r) == 3 and r, timeout=10,
                       what="an exchange and two tunnels")
    [x] = [r for r in records if isinstance(r, Exchange)]
    t, posted = (r for r in records if isinstance(r, Tunnel))
    assert (x.request.port, x.status) == (kept.port, 200)
    assert t.reason == "ignored" and t.callee.address == f"127.0.0.1:{left_out.port}"
    assert t.caller.name == "client"
    assert t.bytes_from_client > 0 and t.bytes_from_server > 0
    assert t.first_from_client == t.first_from_server == b""  # nothing of it is kept
    assert (posted.reason, posted.caller.name) == ("ignored", "poster")
    assert (posted.bytes_from_client, posted.bytes_from_server) == (5, 10)  # the bodies
    assert posted.callee.address == f"127.0.0.1:{plain.port}" and posted.error is None
    assert printed_warnings(capfd) in (None, [])  # asked for: no warning


def test_ignore_hosts_and_a_refused_connect_to_an_ignored_host(start_proxy, tls_pair):
    kept, left_out, test_ca = tls_pair
    with _closed_port() as closed:
        port = closed.getsockname()[1]
        proxy = start_proxy(ignore_hosts=(rf":({left_out.port}|{port})$",), upstream_ca=test_ca)
        assert curl_via(proxy, f"{kept.url}/hi", proxy.ca_file).stdout == "hello over tls"
        assert curl_via(proxy, f"{left_out.url}/hi", test_ca).stdout == "hello over tls"
        assert curl_via(proxy, f"https://127.0.0.1:{port}/", test_ca).returncode != 0
        records = wait_for(lambda: (r := proxy.records()) and len(r) == 3 and r, timeout=10,
                           what="an exchange and two tunnels")
    [x] = [r for r in records if isinstance(r, Exchange)]
    ok, refused = sorted((r for r in records if isinstance(r, Tunnel)),
                         key=lambda t: t.error is not None)
    assert x.request.port == kept.port
    assert (ok.reason, ok.failed, ok.callee.address) == ("ignored", False,
                                                         f"127.0.0.1:{left_out.port}")
    # A refused CONNECT to an ignored host stays out of the exchanges: a failed tunnel.
    assert (refused.reason, refused.error.kind) == ("ignored", "refused")
    assert refused.callee.address == f"127.0.0.1:{port}"
    # Not a failure of the tests: the host was left out on purpose.
    assert not refused.failed and proxy.stats()["errors"] == 0


# -- named listeners: callers that cannot send proxy credentials -----------------------


def test_named_listeners_name_their_callers(start_proxy, services):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/hi", hello)
    svc = services.start("web", app)
    browser, crawler = (Address("127.0.0.1", free_port()) for _ in range(2))
    proxy = start_proxy(listeners=(ListenerSpec("browser", browser),
                                   ListenerSpec("crawler", crawler)))
    for via in (f"http://{browser}", f"http://{crawler}", proxy.url,
                f"http://ops:tap@{crawler}"):
        assert requests.get(f"{svc.url}/hi", proxies={"http": via}, timeout=10).text == "hi"
    exchanges = wait_for(lambda: len(x := proxy.exchanges()) == 4 and x, timeout=10,
                         what="four exchanges")
    # A named listener says more than the client's process, which names the unnamed
    # listener's caller (this very process); credentials still say more than either.
    python = os.path.basename(os.path.realpath(sys.executable))
    assert [(x.caller.name, x.caller.source) for x in exchanges] == [
        ("browser", "listener"), ("crawler", "listener"), (python, "process"),
        ("ops", "proxy-auth")]
    assert exchanges[0].caller.address.startswith("127.0.0.1:")


def test_an_upgrade_to_another_protocol_is_an_exchange_then_a_raw_tunnel(proxy, tcp_server,
                                                                           capfd):
    def upgrade_then_echo(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: chat/1\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        echo(conn)

    server = tcp_server(upgrade_then_echo)
    with socket.create_connection((proxy.options.listen.host, proxy.options.listen.port),
                                  timeout=10) as s:
        s.sendall(f"GET http://127.0.0.1:{server.port}/chat HTTP/1.1\r\nHost: 127.0.0.1:"
                  f"{server.port}\r\nUpgrade: chat/1\r\nConnection: Upgrade\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        s.sendall(b"hello chat")
        assert recv_exactly(s, 10) == b"hello chat"
    records = wait_for(lambda: (r := proxy.records()) and len(r) == 2 and r, timeout=10,
                       what="the upgrade and its tunnel")
    x, t = records
    assert isinstance(x, Exchange) and (x.request.path, x.status) == ("/chat", 101)
    assert isinstance(t, Tunnel) and t.reason == "raw"
    assert (t.first_from_client, t.first_from_server) == (b"hello chat", b"hello chat")
    if (printed := printed_warnings(capfd)) is not None:
        [warning] = printed
        assert "relayed as raw TCP" in warning


def test_a_tunnel_still_open_when_the_recording_stops_is_recorded(proxy, tcp_server):
    server = tcp_server(greet_then_echo)
    with connect_through(proxy, server.port, caller="daemon") as s:
        assert recv_exactly(s, len(GREETING)) == GREETING
        s.sendall(b"STAY\r\n")
        assert recv_exactly(s, 6) == b"STAY\r\n"
        proxy.stop()
    [t] = tunnels(proxy)
    assert (t.caller.name, t.reason, t.ended, t.error) == ("daemon", "server_first", None, None)
    assert (t.bytes_from_client, t.bytes_from_server) == (6, len(GREETING) + 6)
    assert t.duration_ns == 0  # no end, no duration claimed
