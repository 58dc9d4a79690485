"""GET /metrics: the running proxy's live figures equal `tapproxy stats` over its capture."""

from __future__ import annotations

import json

import requests
from aiohttp import web

from tapproxy.supervisor.options import ServiceSpec
from tests.conftest import run_cli


def _app() -> web.Application:
    async def item(request):
        n = int(request.match_info["n"])
        return web.json_response({"n": n}, status=500 if n % 3 == 0 else 200)

    app = web.Application()
    app.router.add_get("/items/{n}", item)
    return app


def test_live_metrics_match_the_capture(services, start_proxy) -> None:
    svc = services.start("items", _app())
    proxy = start_proxy(services=(ServiceSpec("items", "127.0.0.1", svc.port),),
                        routes=("items:/items/{n}",))
    ctl = proxy.control_url
    requests.post(f"{ctl}/tests/start", json={"name": "t1"}, timeout=10)
    for n in range(1, 10):
        requests.get(f"{svc.url}/items/{n}", proxies={"http": proxy.url_as("shop")}, timeout=10)
    requests.post(f"{ctl}/tests/end", json={"name": "t1", "outcome": "passed"}, timeout=10)
    live = requests.get(f"{ctl}/metrics", timeout=10).json()
    proxy.stop()
    (edge,) = live["edge"]
    assert (edge["key"], edge["count"], edge["errors"]) == (["shop", "items"], 9, 3)
    assert [r["key"] for r in live["route"]] == [["items", "GET", "/items/{n}"]]
    assert [(r["key"], r["count"]) for r in live["test"]] == [(["t1"], 9)]
    r = run_cli("stats", proxy.capture, "--json")
    assert r.returncode == 0, r.stderr
    offline = json.loads(r.stdout)
    assert offline == live
