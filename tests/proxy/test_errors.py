"""Failed exchanges: each is recorded with its error kind and mitmproxy's own message.

Upstreams that misbehave are raw loopback sockets (or a real aiohttp service with a
certificate the proxy does not trust); clients are real (requests, curl).
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
import trustme
from aiohttp import web

from tapproxy.capture import Exchange
from tests.conftest import wait_for

FIN_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789"


class RawUpstream:
    """A loopback TCP server that hands each accepted connection to `behaviour`."""

    def __init__(self, behaviour: Callable[[socket.socket, threading.Event], None]) -> None:
        self.released = threading.Event()  # ends behaviours that hang
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._behaviour = behaviour
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._behaviour, args=(conn, self.released),
                             daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self._listener.close()
        for c in self._conns:
            c.close()


@pytest.fixture
def raw_upstream() -> Iterator[Callable[..., RawUpstream]]:
    started: list[RawUpstream] = []

    def start(behaviour) -> RawUpstream:
        started.append(RawUpstream(behaviour))
        return started[-1]

    yield start
    for s in started:
        s.close()


def _read_request_head(conn: socket.socket) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return
        buf += data


def _abort(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def close_without_answer(conn: socket.socket, _: threading.Event) -> None:
    _read_request_head(conn)
    conn.close()


def reset_without_answer(conn: socket.socket, _: threading.Event) -> None:
    _read_request_head(conn)
    _abort(conn)


def close_mid_body(conn: socket.socket, _: threading.Event) -> None:
    _read_request_head(conn)
    conn.sendall(FIN_HEAD)
    conn.close()


def reset_mid_body(conn: socket.socket, _: threading.Event) -> None:
    _read_request_head(conn)
    conn.sendall(FIN_HEAD)
    _abort(conn)


def never_answer(conn: socket.socket, released: threading.Event) -> None:
    _read_request_head(conn)
    released.wait(30)


def only_exchange(proxy) -> Exchange:
    """The one exchange recorded so far, after checking the capture ends on a whole record."""
    [x] = proxy.records_checked()
    assert isinstance(x, Exchange)
    return x


def recorded_exchange(proxy) -> Exchange:
    """Wait for the exchange mitmproxy ends after the client has gone, then read it back."""
    wait_for(proxy.exchanges, timeout=10, what="the failed exchange to be recorded")
    return only_exchange(proxy)


# -- refused ---------------------------------------------------------------------------


def test_refused(proxy):
    # A bound socket that never listens: connecting to it is refused, and nobody else
    # can take the port while the test runs.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        r = requests.get(f"http://127.0.0.1:{port}/orders", proxies={"http": proxy.url_as("shop")},
                         timeout=10)
    assert r.status_code == 502 and r.headers["server"].startswith("mitmproxy")
    x = only_exchange(proxy)
    assert x.error.kind == "refused"
    assert x.error.message == f"[Errno 111] Connect call failed ('127.0.0.1', {port})"
    assert x.response is None and x.status is None and x.failed
    assert (x.caller.name, x.request.path, x.request.port) == ("shop", "/orders", port)
    assert x.timing.error_at is not None and x.timing.server_tcp_done is None


# -- reset -----------------------------------------------------------------------------

@pytest.mark.parametrize("behaviour", [
    pytest.param(close_without_answer, id="fin"),
    pytest.param(reset_without_answer, id="rst"),
])
def test_reset_before_any_response(proxy, raw_upstream, behaviour):
    up = raw_upstream(behaviour)
    r = requests.get(f"{up.url}/pay", proxies={"http": proxy.url}, timeout=10)
    assert r.status_code == 502
    x = only_exchange(proxy)
    assert x.error.message == "server closed connection"
    assert "server closed connection" in r.text  # the client is told the same thing
    assert x.response is None
    assert x.error.kind == "reset"


@pytest.mark.parametrize("behaviour", [close_mid_body, reset_mid_body], ids=["fin", "rst"])
def test_reset_mid_body(proxy, raw_upstream, behaviour):
    up = raw_upstream(behaviour)
    r = requests.get(f"{up.url}/report", proxies={"http": proxy.url}, timeout=10)
    # The body is buffered (it has a Content-Length), so the client gets the proxy's 502.
    assert r.status_code == 502
    x = only_exchange(proxy)
    assert x.error.kind == "reset"
    assert x.error.message == (
        "HTTP/1 protocol error: peer closed connection without sending complete message body "
        "(received 10 bytes, expected 100)")
    # The response headers did arrive, so the record keeps them beside the error.
    assert x.response is not None and x.response.status == 200
    assert x.response.headers.get("content-length") == "100"
    assert x.timing.response_start is not None and x.timing.error_at is not None


# -- timeout ---------------------------------------------------------------------------


def test_silent_upstream_client_timeout_is_recorded_as_client_closed(proxy, raw_upstream):
    # mitmproxy has no upstream read timeout (only `tcp_timeout`, 600 s of inactivity), so
    # with a silent upstream it is the client's own timeout that ends the exchange.
    up = raw_upstream(never_answer)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{up.url}/slow", proxies={"http": proxy.url}, timeout=(5, 0.5))
    x = recorded_exchange(proxy)
    assert (x.error.kind, x.error.message) == ("client_closed", "Client disconnected.")
    assert x.response is None
    t = x.timing
    assert t.request_end is not None and t.server_tcp_done is not None
    assert t.response_start is None and t.error_at >= t.request_end


def test_silent_upstream_proxy_timeout_is_recorded_as_timeout(start_proxy, raw_upstream):
    # The proxy, not the client, gives up after one second of silence.
    proxy = start_proxy(idle_timeout=1)
    up = raw_upstream(never_answer)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{up.url}/slow", proxies={"http": proxy.url}, timeout=10)
    x = recorded_exchange(proxy)
    assert x.response is None
    assert x.error.kind == "timeout", x.error
    assert "no response within 1 s" in x.error.message
    assert "Client disconnected." in x.error.message  # mitmproxy's own words are kept


# -- TLS -------------------------------------------------------------------------------


def test_untrusted_upstream_certificate(proxy, services):
    ca = trustme.CA()  # the proxy is not told about this CA
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="should not be reached")

    app = web.Application()
    app.router.add_get("/", hello)
    svc = services.start("self-signed", app, ssl_context=ctx)

    r = requests.get(f"{svc.url}/", verify=str(proxy.ca_file), timeout=10,
                     proxies={"https": proxy.url_as("auditor")})
    assert r.status_code == 502
    x = only_exchange(proxy)
    assert x.error.kind == "tls"
    assert x.error.message == "Certificate verify failed: unable to get local issuer certificate"
    assert x.error.message in r.text
    assert x.response is None
    assert (x.request.scheme, x.request.port) == ("https", svc.port)
    assert x.caller.name == "auditor"  # named by the CONNECT even though TLS upstream failed
    assert x.timing.server_tls_done is None


# -- the client gives up ---------------------------------------------------------------


def test_client_gives_up_mid_request(proxy, raw_upstream):
    up = raw_upstream(never_answer)
    out = subprocess.run(["curl", "-sS", "--max-time", "1", f"{up.url}/hangs"],
                         env=proxy.env(caller="impatient"), capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 28, out.stderr  # curl: operation timed out
    x = recorded_exchange(proxy)
    assert (x.error.kind, x.error.message) == ("client_closed", "Client disconnected.")
    assert x.response is None and x.failed
    assert (x.caller.name, x.request.path) == ("impatient", "/hangs")
    assert x.timing.request_end is not None and x.timing.response_start is None



# -- protocol, client aborts and TLS refusals (issue 12) ---------------------------------


def not_http(conn: socket.socket, _: threading.Event) -> None:
    _read_request_head(conn)
    conn.sendall(b"HELLO THIS IS NOT HTTP\r\n\r\n")
    conn.close()


def test_invalid_http_response_is_a_protocol_error(proxy, raw_upstream):
    up = raw_upstream(not_http)
    r = requests.get(f"{up.url}/x", proxies={"http": proxy.url}, timeout=10)
    assert r.status_code == 502
    x = only_exchange(proxy)
    assert x.error.kind == "protocol"
    assert x.error.message == ("Cannot parse HTTP response: Bad HTTP response line: "
                               "b'HELLO THIS IS NOT HTTP'")


def test_client_abort_mid_upload_is_client_closed(proxy, raw_upstream):
    up = raw_upstream(never_answer)  # never reached: mitmproxy waits for the whole body
    with socket.create_connection(("127.0.0.1", proxy.options.listen.port)) as s:
        s.sendall(f"POST {up.url}/upload HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n"
                  "Content-Length: 100000\r\n\r\n".encode() + b"a" * 1000)
    x = recorded_exchange(proxy)
    assert x.error.kind == "client_closed"
    assert "received 1000 bytes, expected 100000" in x.error.message
    assert (x.request.path, x.response) == ("/upload", None)


def test_client_rejecting_the_proxy_ca_is_recorded_as_tls(proxy, services):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="never reached")

    app = web.Application()
    app.router.add_get("/", hello)
    svc = services.start("plain", app)
    # No --cacert: curl does not trust the proxy's CA and aborts the handshake.
    out = subprocess.run(["curl", "-sS", "-x", proxy.url_as("auditor"),
                          f"https://127.0.0.1:{svc.port}/"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 60, out.stderr  # curl: peer certificate cannot be authenticated
    x = recorded_exchange(proxy)
    assert x.error.kind == "tls"
    assert x.error.message.startswith("client TLS handshake failed: The client does not "
                                      "trust the proxy's certificate")
    assert (x.request.method, x.request.host, x.request.port) == ("CONNECT", "127.0.0.1",
                                                                  svc.port)
    assert x.caller.name == "auditor" and x.response is None


def test_https_to_a_plain_http_port_is_recorded_as_tls_naming_the_server(proxy, services):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="plain http")

    app = web.Application()
    app.router.add_get("/", hello)
    svc = services.start("plain", app)
    out = subprocess.run(["curl", "-sS", "--cacert", str(proxy.ca_file), "-x", proxy.url,
                          f"https://127.0.0.1:{svc.port}/"],
                         capture_output=True, text=True, timeout=30)
    assert "502 Bad Gateway" in out.stdout
    x = only_exchange(proxy)
    assert (x.error.kind, x.error.message) == ("tls", "The remote server does not speak TLS.")
    assert (x.request.scheme, x.request.port) == ("https", svc.port)
