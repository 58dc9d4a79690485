"""The compose example's pieces, run here without Docker: its tapproxy command line, and
its uninstrumented `orders` service naming itself through HTTP_PROXY (aiohttp trust_env)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import requests
from aiohttp import web
from ruamel.yaml import YAML

from tests.conftest import ROOT, free_port, wait_for

COMPOSE = ROOT / "compose" / "docker-compose.yml"


def test_compose_record_command_is_accepted_by_the_cli():
    spec = YAML(typ="safe").load(COMPOSE.read_text())
    args = shlex.split(spec["services"]["tapproxy"]["command"])
    assert args[0] == "record"
    # Same flags with loopback ports: `--help`-free dry check via the options parser.
    from tapproxy.proxy.options import parse_address

    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert parse_address(flags["--listen"]).port == 8080
    assert parse_address(flags["--control"]).port == 8081


def test_orders_service_calls_through_the_proxy_as_itself(proxy, services):
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    inventory = services.start("inventory", app)
    port = free_port()
    env = proxy.env(caller="orders")
    env.update(HOST="127.0.0.1", PORT=str(port), INVENTORY_URL=inventory.url)
    orders = subprocess.Popen([sys.executable, str(ROOT / "compose" / "orders.py")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening():
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5, proxies={"http": None})
            except requests.ConnectionError:
                return False
            return True

        wait_for(listening, what="orders service")
        r = requests.post(f"http://127.0.0.1:{port}/orders/503", timeout=10,
                          proxies={"http": None})
        assert r.status_code == 502 and r.json()["inventory_status"] == 503
    finally:
        orders.terminate()
        orders.wait(10)
    [x] = proxy.exchanges()
    assert (x.caller.name, x.callee.address, x.status) == (
        "orders", f"127.0.0.1:{inventory.port}", 503)
