"""The built-in demo: three services on loopback behind the proxy, one call that fails.

    tests ──▶ shop ──▶ inventory
                  └──▶ payments   (declines with a 500 for one card)

Each service calls the others through the proxy as an ordinary client would, naming
itself in the proxy URL (`http://shop@127.0.0.1:PORT`); the scenario opens a test
case per step through the control API, like the pytest plugin will.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.options import Address, RecordOptions, ServiceSpec

__all__ = ["DemoResult", "run_demo"]

FAILING_CARD = "4000-0000-0000-0119"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inventory() -> web.Application:
    stock = {"tea": 12, "cups": 0}

    async def get_stock(request: web.Request) -> web.Response:
        sku = request.match_info["sku"]
        if sku not in stock:
            return web.json_response({"error": f"unknown sku {sku}"}, status=404)
        return web.json_response({"sku": sku, "available": stock[sku]})

    app = web.Application()
    app.router.add_get("/stock/{sku}", get_stock)
    return app


def _payments() -> web.Application:
    async def charge(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("card") == FAILING_CARD:
            return web.json_response({"error": "card processor unavailable"}, status=500)
        return web.json_response({"charge_id": "ch_1001", "amount": body["amount"]}, status=201)

    app = web.Application()
    app.router.add_post("/charges", charge)
    return app


def _shop(proxy: str, inventory: str, payments: str) -> web.Application:
    async def on_startup(app: web.Application) -> None:
        app["client"] = aiohttp.ClientSession(proxy=proxy)

    async def on_cleanup(app: web.Application) -> None:
        await app["client"].close()

    async def place_order(request: web.Request) -> web.Response:
        order = await request.json()
        client: aiohttp.ClientSession = request.app["client"]
        async with client.get(f"{inventory}/stock/{order['sku']}") as r:
            stock = await r.json()
        if r.status != 200 or stock["available"] < order["qty"]:
            return web.json_response({"error": "out of stock"}, status=409)
        charge = {"amount": 4.5 * order["qty"], "card": order["card"]}
        async with client.post(f"{payments}/charges", json=charge) as r:
            if r.status != 201:
                return web.json_response({"error": "payment failed"}, status=502)
            paid = await r.json()
        return web.json_response({"order_id": 7, "charge": paid["charge_id"]}, status=201)

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/orders", place_order)
    return app


@dataclass(frozen=True)
class DemoResult:
    capture: Path
    outcomes: dict[str, str]


# (test name, order body, status the test expects)
_SCENARIO = (
    ("test_place_order", {"sku": "tea", "qty": 2, "card": "4242-4242-4242-4242"}, 201),
    ("test_out_of_stock", {"sku": "cups", "qty": 1, "card": "4242-4242-4242-4242"}, 409),
    ("test_declined_card", {"sku": "tea", "qty": 1, "card": FAILING_CARD}, 201),
)


async def run_demo(output: Path, confdir: Path) -> DemoResult:
    """Start the services and the proxy, run the scenario, return when the capture is written."""
    ports = {name: _free_port() for name in ("shop", "inventory", "payments", "proxy", "ctl")}
    url = {name: f"http://127.0.0.1:{ports[name]}" for name in ("shop", "inventory", "payments")}
    opts = RecordOptions(
        output=output,
        listen=Address("127.0.0.1", ports["proxy"]),
        control=Address("127.0.0.1", ports["ctl"]),
        services=tuple(ServiceSpec(n, "127.0.0.1", ports[n]) for n in url),
        confdir=confdir,
    )
    proxy_for = {n: f"http://{n}@127.0.0.1:{ports['proxy']}" for n in ("shop", "tests")}
    apps = {
        "inventory": _inventory(),
        "payments": _payments(),
        "shop": _shop(proxy_for["shop"], url["inventory"], url["payments"]),
    }
    runners = []
    outcomes: dict[str, str] = {}
    try:
        for name, app in apps.items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", ports[name]).start()
            runners.append(runner)
        async with RecordingProxy(opts), aiohttp.ClientSession(proxy=proxy_for["tests"]) as c:
            control = f"http://127.0.0.1:{ports['ctl']}"
            async with aiohttp.ClientSession() as ctl:  # control calls go direct
                for test, order, expected in _SCENARIO:
                    await ctl.post(f"{control}/tests/start", json={"name": test})
                    async with c.post(f"{url['shop']}/orders", json=order) as r:
                        await r.read()
                        outcomes[test] = "passed" if r.status == expected else "failed"
                    await ctl.post(f"{control}/tests/end",
                                   json={"name": test, "outcome": outcomes[test]})
    finally:
        for runner in runners:
            await runner.cleanup()
    return DemoResult(output, outcomes)
