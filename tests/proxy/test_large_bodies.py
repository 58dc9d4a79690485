"""Bodies above --max-body stream through as they arrive and are recorded in part.

Each test holds the sender back until the receiver has seen the first bytes: a proxy
that buffered the whole body would never deliver them, and the test would fail on its
bounded wait, not on a measured time.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import random
import threading

import requests
from aiohttp import web

from tests.conftest import run_cli, wait_for

MAX_BODY = 1 << 20  # the default
BIG = random.Random(9).randbytes(3 << 20)
FIRST = 64 << 10
WAIT = 20  # seconds a held sender waits before giving up (the test then fails)


def test_a_large_response_reaches_the_client_before_the_upstream_has_sent_it(
        proxy, services, loop_thread, tmp_path):
    client_has_first = asyncio.Event()  # set on the services' loop by the test thread
    upstream_gave_up = []

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(len(BIG))})
        await resp.prepare(request)
        await resp.write(BIG[:FIRST])
        try:
            await asyncio.wait_for(client_has_first.wait(), WAIT)
        except TimeoutError:
            upstream_gave_up.append(True)
            raise
        await resp.write(BIG[FIRST:])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/big.bin", big)
    svc = services.start("files", app)

    with requests.get(f"{svc.url}/big.bin", proxies={"http": proxy.url}, stream=True,
                      timeout=WAIT + 10) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(BIG))
        first = r.raw.read(FIRST)  # blocks until the proxy passes the first bytes on
        assert first == BIG[:FIRST]
        loop_thread.loop.call_soon_threadsafe(client_has_first.set)
        rest = r.raw.read()
    assert not upstream_gave_up
    assert first + rest == BIG  # delivered unchanged

    # The client has every byte before mitmproxy's response hook runs: wait for the record.
    [x] = wait_for(proxy.exchanges, what="the exchange's record")
    res = x.response
    assert x.streamed is True
    assert res.body == BIG[:MAX_BODY]
    assert (res.body_size, res.body_sha256) == (len(BIG), hashlib.sha256(BIG).digest())
    assert res.body_truncated and res.size == len(BIG)
    assert res.headers.get("content-length") == str(len(BIG))

    # Every reader says what was kept.
    proxy.stop()
    cap = proxy.capture
    shown = run_cli("show", cap, "--exchange", "1")
    assert shown.returncode == 0, shown.stderr
    assert (f"body truncated: the first {MAX_BODY} of {len(BIG)} bytes were kept, "
            f"SHA-256 {hashlib.sha256(BIG).hexdigest()}") in " ".join(shown.stdout.split())
    table = run_cli("show", cap)
    assert table.stdout.splitlines()[1].endswith(" 3072K")  # the size column: the whole body
    [row] = [json.loads(line) for line in run_cli("show", cap, "--json").stdout.splitlines()]
    assert row["response"]["body_size"] == len(BIG)
    assert row["response"]["body_sha256"] == hashlib.sha256(BIG).hexdigest()
    har_path = tmp_path / "big.har"
    exported = run_cli("export", cap, "--har", har_path)
    assert exported.returncode == 0, exported.stderr
    [entry] = json.loads(har_path.read_text())["log"]["entries"]
    assert entry["response"]["bodySize"] == len(BIG)
    assert "first 1048576 of 3145728 bytes" in entry["response"]["content"]["comment"]
    back = tmp_path / "back.tap"
    assert run_cli("import", har_path, "-o", back).returncode == 0
    from tapproxy.capture import Exchange, open_capture

    with open_capture(back) as reader:
        [y] = [r for r in reader if isinstance(r, Exchange)]
    assert (y.response.body, y.response.body_size, y.response.body_sha256) == (
        res.body, res.body_size, res.body_sha256)
    spans = run_cli("spans", cap, "--bodies", "--out", tmp_path / "spans.json")
    assert spans.returncode == 0, spans.stderr


def test_a_large_request_reaches_the_upstream_before_the_client_has_sent_it(
        proxy, services):
    upstream_has_first = threading.Event()

    async def upload(request: web.Request) -> web.Response:
        first = await request.content.readexactly(FIRST)
        upstream_has_first.set()
        rest = await request.content.read()
        data = first + rest
        return web.json_response({"size": len(data),
                                   "sha256": hashlib.sha256(data).hexdigest()})

    app = web.Application(client_max_size=16 << 20)
    app.router.add_post("/upload", upload)
    svc = services.start("uploads", app)

    conn = http.client.HTTPConnection("127.0.0.1", proxy.options.listen.port, timeout=WAIT + 10)
    conn.putrequest("POST", f"{svc.url}/upload", skip_accept_encoding=True)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(len(BIG)))
    conn.endheaders()
    conn.send(BIG[:FIRST])
    # A proxy that buffered the request would pass nothing on before it had all of it.
    assert upstream_has_first.wait(WAIT), "the upstream saw nothing of the request body yet"
    conn.send(BIG[FIRST:])
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read()) == {"size": len(BIG),
                                       "sha256": hashlib.sha256(BIG).hexdigest()}
    conn.close()

    [x] = wait_for(proxy.exchanges, what="the exchange's record")
    q = x.request
    assert q.body == BIG[:MAX_BODY]
    assert (q.body_size, q.body_sha256) == (len(BIG), hashlib.sha256(BIG).digest())


def test_a_body_up_to_max_body_is_still_buffered_and_kept_whole(start_proxy, services):
    body = BIG[:300_000]

    async def exact(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/exact", exact)
    svc = services.start("exact", app)
    proxy = start_proxy(max_body=len(body))
    r = requests.get(f"{svc.url}/exact", proxies={"http": proxy.url}, timeout=20)
    assert r.content == body
    [x] = proxy.exchanges()
    assert x.streamed is False
    assert (x.response.body, x.response.body_size, x.response.body_sha256) == (body, None, None)


def test_a_bad_max_body_is_one_line_and_exit_2(tmp_path):
    out = run_cli("record", "-o", tmp_path / "x.tap", "--max-body", "lots")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "tapproxy: error: bad --max-body 'lots': expected a size such as 1048576, 512k or 1m"]
    assert not (tmp_path / "x.tap").exists()


def test_memory_stays_bounded_by_max_body_whatever_the_body_size(proxy, services):
    # 32 MiB through the proxy, traced in this process (the proxy fixture runs here, on its
    # own thread): buffered, mitmproxy would hold all of it at once, and again as a copy.
    import tracemalloc

    size, piece = 32 << 20, memoryview(bytes(range(256)) * 256)  # 64 KiB, sent repeatedly

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(size)})
        await resp.prepare(request)
        for _ in range(size // len(piece)):
            await resp.write(piece)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/huge", huge)
    svc = services.start("huge", app)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with requests.get(f"{svc.url}/huge", proxies={"http": proxy.url}, stream=True,
                          timeout=60) as r:
            for chunk in r.iter_content(1 << 16):
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == hashlib.sha256(bytes(piece) * (size // len(piece))).digest()
    assert peak < 12 << 20, f"peak {peak >> 20} MiB traced for a {size >> 20} MiB body"
    [x] = wait_for(proxy.exchanges, what="the exchange's record")
    assert (len(x.response.body), x.response.body_size) == (MAX_BODY, size)
