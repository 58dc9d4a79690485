"""A real recording for the report's tests: aiohttp services calling each other through
the real proxy, a passing test and a cascade failure, with hostile recorded values.

    tests ──▶ gateway ──▶ orders ──▶ payments (500 for the card `bad`)
                                └──▶ inventory

Each service calls the next through the proxy, named by its proxy credentials. The
failing test's name, a request header and a response body carry markup and script that
must stay text in the page (`window.__pwned` is what they would set if they ran).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import requests
from aiohttp import web

from tapproxy.supervisor.options import ServiceSpec

HOSTILE_TEST = ("test_cascade[<img src=x onerror=window.__pwned=1>"
                "</script><script>window.__pwned=2</script>]")
HOSTILE_HEADER = "<script>window.__pwned=3</script>"
HOSTILE_BODY = "javascript:window.__pwned=4 </script><b onmouseover=window.__pwned=5>\u2028"


class Shop:
    def __init__(self, services) -> None:
        self.proxy = None
        self.payments = services.start("payments", self._payments())
        self.inventory = services.start("inventory", self._inventory())
        self.orders = services.start("orders", self._orders())
        self.gateway = services.start("gateway", self._gateway())

    async def _call(self, caller: str, method: str, url: str, **kw) -> tuple[int, object]:
        async with (aiohttp.ClientSession() as s,
                    s.request(method, url, proxy=self.proxy.url_as(caller), **kw) as r):
            return r.status, await r.json(content_type=None)

    def _payments(self) -> web.Application:
        async def charge(request):
            body = await request.json()
            if body.get("card") == "bad":
                return web.json_response({"error": "card declined", "note": HOSTILE_BODY},
                                         status=500)
            return web.json_response({"charged": body["amount"]}, status=201)

        app = web.Application()
        app.router.add_post("/charges", charge)
        return app

    def _inventory(self) -> web.Application:
        async def stock(request):
            return web.json_response({"sku": request.match_info["sku"], "available": 3})

        app = web.Application()
        app.router.add_get("/stock/{sku}", stock)
        return app

    def _orders(self) -> web.Application:
        async def create(request):
            body = await request.json()
            await self._call("orders", "GET", f"{self.inventory.url}/stock/tea")
            status, _ = await self._call("orders", "POST", f"{self.payments.url}/charges",
                                         json={"card": body["card"], "amount": 5})
            if status != 201:
                return web.json_response({"error": "payment failed"}, status=502)
            return web.json_response({"order": 1}, status=201)

        app = web.Application()
        app.router.add_post("/orders", create)
        return app

    def _gateway(self) -> web.Application:
        async def checkout(request):
            status, answer = await self._call("gateway", "POST", f"{self.orders.url}/orders",
                                              json=await request.json())
            return web.json_response(answer, status=502 if status >= 500 else status)

        app = web.Application()
        app.router.add_post("/checkout", checkout)
        return app

    def record(self, start_proxy, more_passing: int = 0) -> Path:
        """Run the tests through a fresh proxy; the capture, once the proxy stopped."""
        named = tuple(ServiceSpec(s.name, "127.0.0.1", s.port)
                      for s in (self.payments, self.inventory, self.orders, self.gateway))
        self.proxy = start_proxy(services=named)
        cases = [(f"test_checkout_{n}", "good", "passed") for n in range(1 + more_passing)]
        cases.append((HOSTILE_TEST, "bad", "failed"))
        for name, card, outcome in cases:
            self._test(name, card, outcome)
        self.proxy.stop()
        return self.proxy.capture

    def _test(self, name: str, card: str, outcome: str) -> None:
        ctl = self.proxy.control_url
        assert requests.post(f"{ctl}/tests/start", json={"name": name}, timeout=10).ok
        requests.post(f"{self.gateway.url}/checkout", json={"card": card}, timeout=20,
                      headers={"x-evil": HOSTILE_HEADER},
                      proxies={"http": self.proxy.url_as("tests")})
        assert requests.post(f"{ctl}/tests/end", json={"name": name, "outcome": outcome},
                             timeout=10).ok
