"""The harness's control API client: one kept connection for a whole test run (it opens
and closes a test case per test), and a new one when the API closed the idle one.

A real aiohttp server on loopback stands in for the control API, noting the client
port of each request it answers.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web

from tapproxy.errors import ProxyError
from tapproxy.proxy.embedded import ControlClient


@pytest.fixture
def api():
    """(url, the client ports of the requests answered, close the idle connections)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    peers: list[int] = []

    async def start_test(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"requests": 1})

    async def missing(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"error": "no such test"}, status=404)

    async def start():
        app = web.Application()
        app.router.add_post("/tests/start", start_test)
        app.router.add_post("/tests/end", start_test)
        app.router.add_post("/tests/missing", missing)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def drop_idle() -> None:
        async def drop():
            for conn in list(runner.server.connections):
                if conn.transport is not None:
                    conn.transport.close()
        asyncio.run_coroutine_threadsafe(drop(), loop).result(10)

    yield f"http://127.0.0.1:{port}", peers, drop_idle
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_run_s_calls_share_one_connection(api):
    url, peers, _ = api
    control = ControlClient(url)
    for n in range(5):
        control.start_test(f"t{n}")
        assert control.end_test(f"t{n}", "passed") == 1
    assert len(peers) == 10
    assert len(set(peers)) == 1
    control.close()


def test_a_connection_the_api_closed_while_idle_is_replaced(api):
    url, peers, drop_idle = api
    control = ControlClient(url)
    control.start_test("one")
    drop_idle()
    control.start_test("two")  # no error: sent again on a new connection
    assert len(peers) == 2 and peers[0] != peers[1]


def test_an_error_answer_names_the_route_and_keeps_the_connection(api):
    url, peers, _ = api
    control = ControlClient(url)
    with pytest.raises(ProxyError, match=r"/tests/missing: 404 no such test$"):
        control._call("POST", "/tests/missing", {})
    control.start_test("after")
    assert len(set(peers)) == 1


def test_an_api_that_is_not_there_is_one_error_naming_it():
    control = ControlClient("http://127.0.0.1:9")  # discard: nothing listens on loopback
    with pytest.raises(ProxyError, match=r"control API http://127.0.0.1:9: cannot reach "
                                         r"it \(connection refused\)"):
        control.start_test("t")
