"""Streamed answers (SSE, chunked) and WebSockets, replayed as recorded."""

from __future__ import annotations

import asyncio

import aiohttp
import httpx


def _streams(urls):
    stock = urls["stock"]
    with httpx.Client() as c, c.stream("GET", f"{stock}/events") as r:
        assert list(r.iter_lines()) == ["data: tick 0", "", "data: tick 1", "",
                                        "data: tick 2", ""]
    assert httpx.get(f"{stock}/chunked").text == "part 0\npart 1\npart 2\npart 3\n"

    async def talk():
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{stock}/ws") as ws:
            assert (await ws.receive()).data == "hello"
            await ws.send_str("one")
            assert (await ws.receive()).data == "echo one"
            await ws.send_str("bye")
            await ws.receive()
    asyncio.run(talk())


def test_sse_and_chunked_answers_are_sent_chunked_as_recorded(record_shop, start_replay):
    capture = record_shop(_streams)
    r = start_replay(capture)
    stock = r.url("stock")
    with httpx.Client() as c, c.stream("GET", f"{stock}/events") as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        events = [chunk for chunk in resp.iter_raw()]
    assert b"".join(events) == b"data: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n"
    chunked = httpx.get(f"{stock}/chunked")
    assert chunked.text == "part 0\npart 1\npart 2\npart 3\n"


def test_websocket_server_messages_in_recorded_order(record_shop, start_replay):
    capture = record_shop(_streams)
    r = start_replay(capture)

    async def talk():
        got = []
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{r.url('stock')}/ws") as ws:
            got.append((await ws.receive()).data)
            await ws.send_str("one")
            got.append((await ws.receive()).data)
            await ws.send_str("bye")
            msg = await ws.receive()
            got.append((msg.type.name, ws.close_code))
        return got

    assert asyncio.run(talk()) == ["hello", "echo one", ("CLOSE", 4000)]
    stats = r.stop()
    assert (stats.matched, stats.unmatched) == (1, 0)


def test_websocket_through_the_forward_proxy(record_shop, start_replay, confdir):
    from tapproxy.capture import open_capture
    from tapproxy.supervisor.options import Address
    from tests.conftest import free_port

    capture = record_shop(_streams)
    with open_capture(capture) as reader:
        [handshake] = [x for x in reader.exchanges() if x.websocket]
    listen = Address("127.0.0.1", free_port())
    r = start_replay(capture, listen=listen, confdir=confdir)

    async def talk():
        got = []
        async with aiohttp.ClientSession() as s, \
                s.ws_connect(handshake.request.url, proxy=f"http://{listen}") as ws:
            got.append((await ws.receive()).data)
            await ws.send_str("one")
            got.append((await ws.receive()).data)
        return got

    assert asyncio.run(talk()) == ["hello", "echo one"]
    stats = r.stop()
    assert (stats.matched, stats.unmatched) == (1, 0)  # the handshake, matched once
