"""Replay fixtures: real aiohttp services recorded through the real proxy, then replayed.

`record_shop(script)` starts `orders` (stateful: create, then get) and `stock` (SSE,
chunked, WebSocket), puts a reverse listener of the real proxy in front of each, runs
`script(urls)` against those listeners, stops everything and returns the capture: the
services are gone before a replay starts. `start_replay(capture, ...)` serves it in
this process on free ports.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

from tapproxy.replay import BackgroundReplay, Replay, noise_mask
from tapproxy.replay.matching import parse_criteria
from tapproxy.replay.options import ReplayOptions, plan_listeners
from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port


def orders_app() -> web.Application:
    """A stateful service: what a POST creates, a GET then finds; every answer carries a
    fresh request id and time (noise)."""
    orders: dict[int, dict] = {}
    ids = itertools.count(1)

    def reply(data: object, status: int = 200) -> web.Response:
        return web.json_response({"data": data, "request_id": str(uuid.uuid4())},
                                 status=status, headers={"x-served-by": "orders"})

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        n = next(ids)
        orders[n] = {"id": n, **body}
        return reply(orders[n], 201)

    async def get(request: web.Request) -> web.Response:
        n = int(request.match_info["id"])
        if n not in orders:
            return reply({"error": "no such order"}, 404)
        return reply(orders[n])

    async def listing(request: web.Request) -> web.Response:
        return reply(sorted(orders))

    app = web.Application()
    app.router.add_post("/orders", create)
    app.router.add_get("/orders", listing)
    app.router.add_get("/orders/{id}", get)
    return app


def stock_app() -> web.Application:
    async def stock(request: web.Request) -> web.Response:
        return web.json_response({"sku": request.match_info["sku"],
                                  "qty": int(request.query.get("n", "7"))})

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"data: tick {i}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(4):
            await resp.write(f"part {i}\n".encode())
        await resp.write_eof()
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str("hello")
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                if msg.data == "bye":
                    await sock.close(code=4000, message=b"done")
                    break
                await sock.send_str(f"echo {msg.data}")
        return sock

    app = web.Application()
    app.router.add_get("/stock/{sku}", stock)
    app.router.add_get("/events", events)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/ws", ws)
    return app


@pytest.fixture
def record_shop(start_proxy, services, tmp_path) -> Callable[..., Path]:
    """record_shop(script, name='shop.tap') → the capture of `script({name: url})`."""
    def record(script: Callable[[dict[str, str]], None], name: str = "shop.tap") -> Path:
        orders = services.start("orders", orders_app())
        stock = services.start("stock", stock_app())
        fronts = {n: free_port() for n in ("orders", "stock")}
        proxy = start_proxy(output=tmp_path / name, reverse=tuple(
            ReverseSpec(n, svc.url, Address("127.0.0.1", fronts[n]))
            for n, svc in (("orders", orders), ("stock", stock))))
        script({n: f"http://127.0.0.1:{p}" for n, p in fronts.items()})
        proxy.stop()
        services.stop_all()
        return proxy.capture
    return record


@dataclass
class Replaying:
    replay: Replay
    background: BackgroundReplay
    log: list[str]

    def url(self, name: str) -> str:
        return f"http://{dict(self.replay.bound())[name]}"

    def stop(self):
        return self.background.stop()


@pytest.fixture
def start_replay() -> Iterator[Callable[..., Replaying]]:
    """start_replay(capture, match=None, **options) → a Replaying on free ports."""
    running: list[Replaying] = []

    def start(capture: Path, match: list[str] | None = None, ignore=(), **kw) -> Replaying:
        opts = ReplayOptions(capture=capture, criteria=parse_criteria(match), **kw)
        log: list[str] = []
        replay = Replay(opts, noise_mask(ignore), log=log.append)
        replay.prepare(lambda callees: plan_listeners(callees, (), 0))
        bg = BackgroundReplay(replay)
        bg.start()
        running.append(Replaying(replay, bg, log))
        return running[-1]

    yield start
    for r in running:
        r.stop()
