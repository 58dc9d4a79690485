"""The failure story of real services calling each other through the real proxy.

gateway → web → inventory / db and gateway → payments are aiohttp services on loopback;
each calls the next through the proxy, named by its proxy credentials; the test client
is `pytest`. Each test case is opened and closed through the control API, and the story
is read back with the real `tapproxy why`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from urllib.parse import urljoin

import aiohttp
import pytest
import requests
from aiohttp import web

from tapproxy.supervisor.options import ServiceSpec
from tests.conftest import run_cli, wait_for


class Shop:
    def __init__(self, services) -> None:
        self.proxy = None
        self._background: set[asyncio.Task] = set()
        self.db = services.start("db", self._db())
        self.inventory = services.start("inventory", self._inventory())
        self.payments = services.start("payments", self._payments())
        self.web = services.start("web", self._web())
        self.gateway = services.start("gateway", self._gateway())

    def start(self, start_proxy):
        named = tuple(ServiceSpec(s.name, "127.0.0.1", s.port)
                      for s in (self.db, self.inventory, self.payments, self.web, self.gateway))
        self.proxy = start_proxy(services=named)
        return self.proxy

    async def call(self, caller: str, method: str, url: str, timeout: float = 10, **kw):
        """(status, json) of a call made through the proxy as `caller`."""
        limit = aiohttp.ClientTimeout(total=timeout)
        async with (aiohttp.ClientSession(timeout=limit) as s,
                    s.request(method, url, proxy=self.proxy.url_as(caller), **kw) as r):
            body = await r.text()
        try:
            return r.status, json.loads(body)
        except ValueError:  # the proxy's own 502 page, say
            return r.status, body

    def _db(self) -> web.Application:
        async def slow(request):
            await asyncio.sleep(1.5)
            return web.json_response({"rows": 1})

        app = web.Application()
        app.router.add_get("/slow", slow)
        return app

    def _inventory(self) -> web.Application:
        async def reserve(request):
            body = await request.json()
            if not isinstance(body.get("qty"), int):
                return web.json_response({"error": "qty must be an integer"}, status=400)
            return web.json_response({"reserved": body["qty"]})

        async def item(request):
            return web.json_response({"error": "no such item"}, status=404)

        async def stock(request):
            await asyncio.sleep(0.05)
            return web.json_response({"error": "stock db down"}, status=503)

        async def health(request):
            return web.json_response({"status": "degraded"}, status=503)

        app = web.Application()
        app.router.add_post("/reserve", reserve)
        app.router.add_get("/items/{id}", item)
        app.router.add_get("/stock", stock)
        app.router.add_get("/health", health)
        return app

    def _payments(self) -> web.Application:
        async def pay(request):
            # Close with SO_LINGER 0: the peer sees a reset, not a clean end.
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            await asyncio.sleep(1)
            return web.Response()

        app = web.Application()
        app.router.add_post("/pay", pay)
        return app

    def _web(self) -> web.Application:
        async def order(request):
            # Drifted contract: qty is sent as a string.
            status, _ = await self.call("web", "POST", f"{self.inventory.url}/reserve",
                                        json={"sku": "A-1", "qty": "2"})
            if status != 200:
                return web.json_response({"error": "reservation failed"}, status=500)
            return web.json_response({"ok": True})

        async def report(request):
            status, body = await self.call("web", "GET", f"{self.db.url}/slow")
            return web.json_response(body, status=status)

        async def price(request):
            return web.json_response({"price": 3})

        app = web.Application()
        app.router.add_post("/order", order)
        app.router.add_get("/report", report)
        app.router.add_get("/price", price)
        return app

    def _gateway(self) -> web.Application:
        async def checkout(request):
            status, _ = await self.call("gateway", "POST", f"{self.web.url}/order")
            return web.json_response({"error": "upstream"} if status >= 500 else {},
                                     status=502 if status >= 500 else 200)

        async def report(request):
            try:
                await self.call("gateway", "GET", f"{self.web.url}/report", timeout=0.5)
            except TimeoutError:
                return web.json_response({"error": "web timed out"}, status=504)
            return web.json_response({})

        async def pay(request):
            for _ in range(2):
                status, _ = await self.call("gateway", "POST", f"{self.payments.url}/pay")
                if status < 500:
                    return web.json_response({"paid": True})
            return web.json_response({"error": "payments unreachable"}, status=502)

        async def item(request):
            status, _ = await self.call("gateway", "GET",
                                        f"{self.inventory.url}/items/{request.match_info['id']}")
            return web.json_response({"found": status == 200})

        async def quote(request):
            # Fan out in parallel; one branch fails.
            _, (stock, _) = await asyncio.gather(
                self.call("gateway", "GET", f"{self.web.url}/price"),
                self.call("gateway", "GET", f"{self.inventory.url}/stock"))
            return web.json_response({}, status=502 if stock >= 500 else 200)

        async def warmup(request):
            # After answering, on its own, the gateway probes inventory's health: a red
            # herring that fails before the real failure, and nothing waits for it.
            self._background.add(asyncio.get_running_loop().create_task(probe()))
            return web.json_response({})

        async def probe():
            await asyncio.sleep(0.2)
            await self.call("gateway", "GET", f"{self.inventory.url}/health")

        app = web.Application()
        app.router.add_get("/quote", quote)
        app.router.add_get("/warmup", warmup)
        app.router.add_post("/checkout", checkout)
        app.router.add_get("/report", report)
        app.router.add_post("/pay", pay)
        app.router.add_get("/items/{id}", item)
        return app


def _in_test(proxy, name: str, outcome: str, method: str, url: str) -> int:
    ctl = proxy.control_url
    assert requests.post(f"{ctl}/tests/start", json={"name": name}, timeout=10).ok
    if name in PRELUDE:
        first, then = PRELUDE[name]
        requests.get(urljoin(url, first), proxies={"http": proxy.url_as("pytest")}, timeout=20)
        wait_for(lambda: any(x.request.path == then for x in proxy.exchanges()),
                 what=f"{name}'s call to {then}")
    r = requests.request(method, url, proxies={"http": proxy.url_as("pytest")}, timeout=20)
    assert requests.post(f"{ctl}/tests/end", json={"name": name, "outcome": outcome},
                         timeout=10).ok
    return r.status_code


SCENARIOS = {
    "test_checkout": ("failed", "POST", "/checkout", 502),
    "test_report": ("failed", "GET", "/report", 504),
    "test_pay": ("failed", "POST", "/pay", 502),
    "test_item": ("passed", "GET", "/items/9", 200),
    "test_quote": ("failed", "GET", "/quote", 502),
}

# A first request of a scenario, and the later call it causes: the test waits for that.
PRELUDE = {"test_quote": ("/warmup", "/health")}


@pytest.fixture
def record(services, start_proxy):
    """record(*tests): run those scenarios as test cases; the capture's path."""
    def run(*tests: str):
        shop = Shop(services)
        proxy = shop.start(start_proxy)
        for name in tests:
            outcome, method, path, status = SCENARIOS[name]
            assert _in_test(proxy, name, outcome, method, f"{shop.gateway.url}{path}") == status
        if "test_report" in tests:
            # web's call to db outlives the test; it is recorded when it completes.
            wait_for(lambda: any(x.callee.name == "db" for x in proxy.exchanges()),
                     what="the slow call to db")
        proxy.stop()
        return proxy.capture

    return run


def why(capture, test: str) -> dict:
    r = run_cli("why", capture, "--test", test, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def call_of(story: dict, number: int) -> tuple:
    c = story["calls"][number - 1]
    return c["caller"], c["callee"], c["method"], c["path"]


def test_a_4xx_that_caused_a_500_two_hops_down_is_the_root(record) -> None:
    recorded = record("test_checkout")
    s = why(recorded, "test_checkout")
    root = s["root"]["number"]
    assert call_of(s, root) == ("web", "inventory", "POST", "/reserve")
    assert s["root"]["why"] == "a 400 its caller #2 gateway → web turned into 500"
    assert s["root"]["request_excerpt"] == '{"sku": "A-1", "qty": "2"}'
    assert s["root"]["response_excerpt"] == '{"error": "qty must be an integer"}'
    assert s["propagation"] == "propagated: gateway 502, web 500"
    text = run_cli("why", recorded, "--test", "test_checkout").stdout
    # Every line fits 80 columns but a capture path, which is never cut (it is there to
    # be copied) and under xdist's temporary directories can be longer on its own.
    assert max(len(line) for line in text.splitlines() if str(recorded) not in line) <= 80
    assert "  3     web → inventory  POST /reserve" in text
    assert text.splitlines()[3].endswith("400   ") or "◀ root" in text.splitlines()[3]


def test_a_timeout_surfacing_as_504_names_the_slow_call(record) -> None:
    recorded = record("test_report")
    s = why(recorded, "test_report")
    root = s["root"]["number"]
    assert call_of(s, root) == ("web", "db", "GET", "/slow")
    assert s["root"]["failure"]["kind"] == "slow"
    assert s["root"]["why"].startswith("still open when #2 gateway → web gave up after")
    assert s["calls"][0]["status"] == 504


def test_a_reset_retried_is_the_root_with_numbered_attempts(record) -> None:
    recorded = record("test_pay")
    s = why(recorded, "test_pay")
    root = s["root"]
    assert call_of(s, root["number"]) == ("gateway", "payments", "POST", "/pay")
    assert root["failure"] == {"kind": "transport", "label": "reset",
                               "detail": root["failure"]["detail"]}
    assert (root["attempt"], root["attempts"]) == (1, 2)
    reasons = {c["number"]: c["reason"] for c in s["consequences"]}
    assert reasons == {1: f"propagated from #{root['number']}",
                       3: f"retry: attempt 2 of 2 of #{root['number']}"}


def test_a_handled_404_in_a_passing_test_has_no_root(record) -> None:
    recorded = record("test_item", "test_checkout")
    s = why(recorded, "test_item")
    assert s["root"] is None
    assert [c["status"] for c in s["calls"]] == [200, 404]
    r = run_cli("why", recorded)
    assert "1 of 2 tests with a failure to explain" in r.stderr
    assert "test_item" not in r.stdout


def test_parallel_fan_out_with_one_bad_branch_and_a_red_herring_probe(record) -> None:
    recorded = record("test_quote")
    s = why(recorded, "test_quote")
    calls = {c["number"]: (c["caller"], c["callee"], c["path"]) for c in s["calls"]}
    root = s["root"]["number"]
    assert calls[root] == ("gateway", "inventory", "/stock")
    assert s["root"]["why"] == "status 503; it made no calls"
    assert [(calls[c["number"]], c["reason"]) for c in s["consequences"]] == [
        (("pytest", "gateway", "/quote"), f"propagated from #{root}")]
    (probe,) = s["others"]
    assert probe["number"] < root  # it failed first, and is still not the root
    assert calls[probe["number"]] == ("gateway", "inventory", "/health")
    assert probe["reason"] == ("caused no failure the test saw: gateway made it on its own, "
                               "outside any request")
    assert s["calls"][probe["number"] - 1]["parent"] is None
