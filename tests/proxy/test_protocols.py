"""Protocols through the real proxy: TLS, HTTP/2, encodings, streaming, WebSocket, as-is statuses.

Each test drives a real client through the embedded mitmproxy to a real loopback
service and checks both what the client got and what the capture says.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import ssl
import subprocess
from pathlib import Path

import aiohttp
import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import requests
import trustme
from aiohttp import web

from tapproxy.capture import Exchange, WebSocketEnd, WebSocketMessage
from tapproxy.capture.encoding import body_json, decoded_body
from tests.conftest import wait_for

# -- shared pieces ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream_ca() -> trustme.CA:
    """A test CA that signs the upstream services' certificates (not the proxy's CA)."""
    return trustme.CA()


def server_tls(ca: trustme.CA, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


@pytest.fixture
def ca_pem(upstream_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "upstream-ca.pem"
    upstream_ca.cert_pem.write_to_path(str(path))
    return path


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.path}", headers={"x-scheme": request.scheme})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    return app


def trusting(proxy) -> ssl.SSLContext:
    """A client context that trusts the proxy's interception CA (and nothing else)."""
    return ssl.create_default_context(cafile=proxy.ca_file)


def read_back_cleanly(proxy) -> list:
    """Every record so far, asserting the file ends on a whole record."""
    return proxy.records_checked()


# -- 1. HTTPS upstream -----------------------------------------------------------------


def test_https_upstream_via_curl_and_requests(start_proxy, services, upstream_ca, ca_pem):
    svc = services.start("secure", hello_app(), ssl_context=server_tls(upstream_ca))
    proxy = start_proxy(upstream_ca=ca_pem)

    out = subprocess.run(["curl", "-sS", "--fail", f"{svc.url}/by-curl"],
                         env=proxy.env(caller="checkout"), capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello /by-curl"
    r = requests.get(f"{svc.url}/by-requests", verify=str(proxy.ca_file), timeout=10,
                     proxies={"https": proxy.url_as("billing")})
    assert (r.status_code, r.text) == (200, "hello /by-requests")

    xs = {x.request.path: x for x in proxy.exchanges()}
    assert set(xs) == {"/by-curl", "/by-requests"}
    for path, caller in (("/by-curl", "checkout"), ("/by-requests", "billing")):
        x = xs[path]
        assert (x.request.scheme, x.request.port, x.status) == ("https", svc.port, 200)
        assert x.response.body == f"hello {path}".encode()
        assert x.response.headers.get("x-scheme") == "https"
        # Inside the tunnel there are no credentials: the name comes from the CONNECT.
        assert (x.caller.name, x.caller.source) == (caller, "proxy-auth")
        assert "proxy-authorization" not in x.request.headers
        t = x.timing
        assert t.client_tls_done is not None and t.server_tls_done is not None
        assert t.server_conn_start <= t.server_tls_done <= t.response_start
        assert t.client_conn_start <= t.client_tls_done <= t.request_start


# -- 2. HTTP/2 -------------------------------------------------------------------------


async def _serve_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/2 server (h2's state machine): answers each request with its path."""
    _H2_WRITERS.add(writer)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    paths: dict[int, str] = {}
    try:
        while data := await reader.read(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    paths[ev.stream_id] = dict(ev.headers)[":path"]
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    body = f"h2 {paths.pop(ev.stream_id)}".encode()
                    conn.send_headers(ev.stream_id, [
                        (":status", "200"), ("content-type", "text/plain"),
                        ("content-length", str(len(body)))])
                    conn.send_data(ev.stream_id, body, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
    finally:
        _H2_WRITERS.discard(writer)
        writer.close()


_H2_WRITERS: set[asyncio.StreamWriter] = set()


@pytest.fixture
def h2_upstream(loop_thread, upstream_ca):
    """An HTTPS service that speaks only HTTP/2 (ALPN h2) on a loopback port."""
    async def start():
        return await asyncio.start_server(_serve_h2, "127.0.0.1", 0,
                                          ssl=server_tls(upstream_ca, ["h2"]))

    server = loop_thread.run(start())
    yield server.sockets[0].getsockname()[1]

    async def stop():
        server.close()
        for w in list(_H2_WRITERS):
            w.close()
        await server.wait_closed()

    loop_thread.run(stop())


def test_http2_end_to_end(start_proxy, h2_upstream, ca_pem):
    proxy = start_proxy(upstream_ca=ca_pem)
    with httpx.Client(http2=True, proxy=proxy.url_as("mobile"), verify=trusting(proxy),
                      timeout=10) as c:
        r = c.get(f"https://127.0.0.1:{h2_upstream}/two")
    assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "h2 /two")
    [x] = proxy.exchanges()
    assert x.request.http_version == "HTTP/2.0" and x.response.http_version == "HTTP/2.0"
    assert (x.request.scheme, x.request.path, x.status) == ("https", "/two", 200)
    assert x.response.body == b"h2 /two"
    assert x.caller.name == "mobile"


def test_http2_client_is_held_to_what_an_http1_upstream_speaks(start_proxy, services,
                                                               upstream_ca, ca_pem):
    # mitmproxy mirrors the upstream's ALPN choice to the client, so a client never
    # speaks a protocol to the proxy that the service itself would not have accepted.
    svc = services.start("h1only", hello_app(), ssl_context=server_tls(upstream_ca))
    proxy = start_proxy(upstream_ca=ca_pem)
    with httpx.Client(http2=True, proxy=proxy.url, verify=trusting(proxy), timeout=10) as c:
        r = c.get(f"{svc.url}/one")
    assert (r.http_version, r.text) == ("HTTP/1.1", "hello /one")
    [x] = proxy.exchanges()
    assert x.request.http_version == "HTTP/1.1"


# -- 3. gzip ---------------------------------------------------------------------------

ORIGINAL = b'{"items": [' + b", ".join(b'{"n": %d}' % i for i in range(200)) + b"]}"
GZIPPED = gzip.compress(ORIGINAL, mtime=0)


def gzip_app() -> web.Application:
    async def download(request: web.Request) -> web.Response:
        return web.Response(body=GZIPPED, headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def upload(request: web.Request) -> web.Response:
        raw = await request.read()  # auto_decompress is off: the bytes as they arrived
        return web.json_response({
            "encoding": request.headers.get("Content-Encoding"),
            "raw_is_same": raw == GZIPPED,
            "decoded_is_same": gzip.decompress(raw) == ORIGINAL,
        })

    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_get("/data", download)
    app.router.add_post("/data", upload)
    return app


def test_gzip_response_passes_untouched_and_is_recorded_raw(proxy, services):
    svc = services.start("gz", gzip_app())
    r = requests.get(f"{svc.url}/data", proxies={"http": proxy.url}, stream=True, timeout=10)
    on_wire = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "gzip"
    assert on_wire == GZIPPED
    # curl without --compressed writes the body exactly as received.
    out = subprocess.run(["curl", "-sS", "--fail", f"{svc.url}/data"],
                         env=proxy.env(caller="curl"), capture_output=True, timeout=20)
    assert out.stdout == GZIPPED, out.stderr

    xs = proxy.exchanges()
    assert len(xs) == 2
    for x in xs:
        assert x.response.headers.get("content-encoding") == "gzip"
        assert x.response.body == GZIPPED
        assert decoded_body(x.response) == ORIGINAL
        assert body_json(x.response)["items"][199] == {"n": 199}


def test_gzip_request_body_passes_untouched_and_is_recorded_raw(proxy, services):
    svc = services.start("gz", gzip_app())
    r = requests.post(f"{svc.url}/data", data=GZIPPED, proxies={"http": proxy.url}, timeout=10,
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.json() == {"encoding": "gzip", "raw_is_same": True, "decoded_is_same": True}
    [x] = proxy.exchanges()
    assert x.request.headers.get("content-encoding") == "gzip"
    assert x.request.body == GZIPPED
    assert decoded_body(x.request) == ORIGINAL


# -- 4. Server-sent events -------------------------------------------------------------


def test_server_sent_events_stream_through(proxy, services, loop_thread):
    count = 3
    # Event i (i > 0) is sent only once the client has seen event i - 1: if the proxy
    # held the stream back, the client would never see event 0 and its read times out.
    gates = [asyncio.Event() for _ in range(count)]

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(count):
            if i:
                await asyncio.wait_for(gates[i].wait(), 15)
            await resp.write(f"data: {i}\n\n".encode())
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/events", events)
    svc = services.start("sse", app)

    received: list[bytes] = []
    with (httpx.Client(proxy=proxy.url_as("browser"), timeout=5) as c,
          c.stream("GET", f"{svc.url}/events") as r):
        assert r.headers["content-type"] == "text/event-stream"
        buf = b""
        for chunk in r.iter_raw():
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                received.append(event)
                if len(received) < count:
                    loop_thread.loop.call_soon_threadsafe(gates[len(received)].set)
    assert received == [b"data: 0", b"data: 1", b"data: 2"]

    [x] = proxy.exchanges()
    assert x.streamed is True
    assert x.response.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert x.timing.response_start <= x.timing.response_end


# -- 5. chunked ------------------------------------------------------------------------


def test_chunked_response_arrives_intact_and_is_recorded_whole(proxy, services):
    pieces = [b"alpha-", b"", b"beta-" * 1000, b"gamma"]

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for p in pieces:
            await resp.write(p)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    svc = services.start("chunky", app)

    r = requests.get(f"{svc.url}/chunked", proxies={"http": proxy.url}, timeout=10)
    whole = b"".join(pieces)
    assert r.content == whole
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers
    [x] = proxy.exchanges()
    assert x.streamed is True
    assert x.response.body == whole
    assert x.response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in x.response.headers


# -- 6. one MiB each way ---------------------------------------------------------------


def test_one_mebibyte_each_way_is_recorded_byte_exact(proxy, services):
    blob = random.Random(1234).randbytes(1 << 20)

    async def mirror(request: web.Request) -> web.Response:
        return web.Response(body=(await request.read())[::-1],
                            content_type="application/octet-stream")

    app = web.Application(client_max_size=4 << 20)
    app.router.add_post("/blob", mirror)
    svc = services.start("blobs", app)

    r = requests.post(f"{svc.url}/blob", data=blob, proxies={"http": proxy.url}, timeout=20,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.content == blob[::-1]
    [x] = proxy.exchanges()
    assert len(x.request.body) == len(x.response.body) == 1 << 20
    assert x.request.body == blob
    assert x.response.body == blob[::-1]


# -- 7. WebSocket ----------------------------------------------------------------------


def ws_echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"echo {msg.data}")
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    return app


async def _chat(url: str, proxy_url: str, ca_file: Path) -> list:
    got: list = []
    async with (aiohttp.ClientSession() as s,
                s.ws_connect(url, proxy=proxy_url,
                             ssl=ssl.create_default_context(cafile=ca_file)) as ws):
        await ws.send_str("hi")
        got.append(await ws.receive_str(timeout=5))
        await ws.send_bytes(b"\x00\x01\x02")
        got.append(await ws.receive_bytes(timeout=5))
        await ws.close(code=4001, message=b"done")
    return got


@pytest.mark.parametrize("scheme", ["http", "wss"])
def test_websocket_messages_follow_their_handshake(start_proxy, services, upstream_ca, ca_pem,
                                                   scheme):
    # `http://` makes aiohttp send an absolute-form upgrade request to the proxy; `wss://`
    # goes through a CONNECT tunnel, as browsers do.
    tls = server_tls(upstream_ca) if scheme == "wss" else None
    svc = services.start("ws", ws_echo_app(), ssl_context=tls)
    proxy = start_proxy(upstream_ca=ca_pem)
    url = f"{scheme}://127.0.0.1:{svc.port}/ws"
    assert asyncio.run(_chat(url, proxy.url_as("chat"), proxy.ca_file)) == [
        "echo hi", b"\x02\x01\x00"]

    # The end is recorded when mitmproxy sees both sides closed, after the client is done.
    def ended() -> list | None:
        records = proxy.records()
        return records if records and isinstance(records[-1], WebSocketEnd) else None

    records = wait_for(ended, timeout=10, what="the WebSocketEnd record")
    [x] = [r for r in records if isinstance(r, Exchange)]
    assert x.websocket is True and x.status == 101
    assert x.request.scheme == ("https" if tls else "http")
    assert (x.caller.name, x.request.path) == ("chat", "/ws")
    assert records[0] is x  # the handshake is written before any message
    follow = records[1:]
    assert all(r.exchange_id == x.id for r in follow)
    msgs = [r for r in follow if isinstance(r, WebSocketMessage)]
    assert [(m.from_client, m.is_text, m.content) for m in msgs] == [
        (True, True, b"hi"),
        (False, True, b"echo hi"),
        (True, False, b"\x00\x01\x02"),
        (False, False, b"\x02\x01\x00"),
    ]
    stamps = [m.timestamp for m in msgs]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]
    assert stamps[0] >= x.timing.request_start
    end = follow[-1]
    assert len(follow) == len(msgs) + 1
    assert (end.close_code, end.close_reason, end.error) == (4001, "done", None)
    assert end.timestamp >= stamps[-1]


@pytest.mark.xfail(strict=True, raises=aiohttp.WSServerHandshakeError,
                   reason="mitmproxy answers 400 'Invalid request scheme: ws' to the absolute-form "
                          "`GET ws://…` aiohttp sends to an HTTP proxy (mitmproxy#3867, #7717)")
def test_websocket_ws_scheme_url_through_proxy(proxy, services):
    svc = services.start("ws", ws_echo_app())
    url = f"ws://127.0.0.1:{svc.port}/ws"
    assert asyncio.run(_chat(url, proxy.url, proxy.ca_file)) == ["echo hi", b"\x02\x01\x00"]


# -- 8. statuses recorded as they are ---------------------------------------------------


def test_redirect_head_and_204_are_recorded_as_is(proxy, services):
    hits = {"/new": 0}

    async def old(request: web.Request) -> web.Response:
        raise web.HTTPFound("/new")

    async def new(request: web.Request) -> web.Response:
        hits["/new"] += 1
        return web.Response(text="arrived")

    async def doc(request: web.Request) -> web.Response:
        return web.Response(text="x" * 42)

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/old", old)
    app.router.add_get("/new", new)
    app.router.add_get("/doc", doc)  # also answers HEAD
    app.router.add_delete("/thing", empty)
    svc = services.start("statuses", app)
    px = {"http": proxy.url}

    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                          f"{svc.url}/old"], env=proxy.env(), capture_output=True, text=True,
                         timeout=20)
    assert out.stdout == f"302 {svc.url}/new", out.stderr
    head = requests.head(f"{svc.url}/doc", proxies=px, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == "42"
    gone = requests.delete(f"{svc.url}/thing", proxies=px, timeout=10)
    assert gone.status_code == 204 and gone.content == b""

    assert hits["/new"] == 0  # nobody followed the redirect
    xs = proxy.exchanges()
    assert [(x.request.method, x.request.path, x.status) for x in xs] == [
        ("GET", "/old", 302), ("HEAD", "/doc", 200), ("DELETE", "/thing", 204)]
    redirect, head_x, no_content = xs
    assert redirect.response.headers.get("location") == "/new"
    assert head_x.response.body == b"" and head_x.response.headers.get("content-length") == "42"
    assert no_content.response.body == b"" and not no_content.streamed
    assert not any(x.error for x in xs)
    records = read_back_cleanly(proxy)
    assert len(records) == 3
