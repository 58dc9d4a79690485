"""Real clients through HTTP_PROXY: every exchange recorded, the service sees what it would."""

from __future__ import annotations

import asyncio
import os
import subprocess

import aiohttp
import httpx
import pytest
import requests
from aiohttp import web

from tapproxy.capture.encoding import body_json
from tests.conftest import TEST_WORKERS


def echo_app() -> web.Application:
    """Answers with what it received, so a test sees exactly what reached the service."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({
            "method": request.method,
            "path": request.path_qs,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("latin-1"),
        }, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
def echo(services):
    return services.start("echo", echo_app())


def _names(headers) -> set[str]:
    return {k.lower() for k, _ in headers}


def test_curl_records_exchange_and_names_caller(proxy, echo):
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", "--data", "hello=1",
         "-H", "x-tapproxy-test: test_curl", f"{echo.url}/orders?x=1"],
        env=proxy.env(caller="checkout"), capture_output=True, text=True, check=True,
    )
    seen = __import__("json").loads(out.stdout)
    # Nothing meant for tapproxy reached the service, and nothing was added.
    names = _names(seen["headers"])
    assert "proxy-authorization" not in names and "x-tapproxy-test" not in names
    assert "via" not in names
    [x] = proxy.exchanges()
    assert x.caller.name == "checkout" and x.caller.source == "proxy-auth"
    if TEST_WORKERS == 1:  # the proxy runs in this process, which it does not name
        assert x.callee.name == "127.0.0.1" and x.callee.source == "host"
    else:  # this process serves `echo`: named by its executable, from another process
        assert x.callee.pid == os.getpid() and x.callee.source == "process"
    assert x.callee.address == f"127.0.0.1:{echo.port}"
    assert (x.request.method, x.request.path, x.status) == ("POST", "/orders?x=1", 201)
    assert x.request.body == b"hello=1"
    assert x.test == "test_curl" and x.test_source == "header"
    assert body_json(x.response)["path"] == "/orders?x=1"
    t = x.timing
    assert t.request_start <= t.request_end <= t.response_start <= t.response_end
    assert t.client_conn_start is not None and t.server_conn_start is not None


def test_requests_httpx_aiohttp_all_recorded(proxy, echo):
    env = proxy.env(caller="web")
    s = requests.Session()
    s.proxies = {"http": env["HTTP_PROXY"], "https": env["HTTPS_PROXY"]}
    assert s.get(f"{echo.url}/requests").status_code == 200
    with httpx.Client(proxy=env["HTTP_PROXY"]) as c:
        assert c.post(f"{echo.url}/httpx", json={"a": 1}).status_code == 201

    async def with_aiohttp():
        async with (
            aiohttp.ClientSession(proxy=proxy.url, headers={"x-tapproxy-caller": "worker"}) as c,
            c.get(f"{echo.url}/aiohttp") as r,
        ):
            return r.status, await r.json()

    status, seen = asyncio.run(with_aiohttp())
    assert status == 200 and "x-tapproxy-caller" not in _names(seen["headers"])
    xs = {x.request.path: x for x in proxy.exchanges()}
    assert set(xs) == {"/requests", "/httpx", "/aiohttp"}
    assert xs["/requests"].caller.name == "web" and xs["/httpx"].caller.name == "web"
    assert body_json(xs["/httpx"].request) == {"a": 1}
    assert (xs["/aiohttp"].caller.name, xs["/aiohttp"].caller.source) == ("worker", "header")


def test_unnamed_caller_stays_visibly_unknown(start_proxy, echo):
    proxy = start_proxy(process_callers=False)  # else its process names it (test_processes)
    requests.get(f"{echo.url}/anon", proxies={"http": proxy.url}, timeout=10)
    [x] = proxy.exchanges()
    assert x.caller.source == "peer" and x.caller.name == "127.0.0.1"
    assert x.caller.address.startswith("127.0.0.1:")


def test_service_map_names_callee(start_proxy, echo):
    from tapproxy.supervisor.options import ServiceSpec

    proxy = start_proxy(services=(ServiceSpec("orders", "127.0.0.1", echo.port),))
    requests.get(f"{echo.url}/x", proxies={"http": proxy.url}, timeout=10)
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source) == ("orders", "service-map")


def test_reverse_listener_taps_a_service_that_ignores_proxies(start_proxy, echo):
    from tapproxy.supervisor.options import Address, ReverseSpec
    from tests.conftest import free_port

    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("orders", echo.url, Address("127.0.0.1", port)),))
    r = requests.get(f"http://127.0.0.1:{port}/direct?q=2", timeout=10,
                     headers={"x-tapproxy-caller": "frontend"})
    assert r.status_code == 200 and r.json()["path"] == "/direct?q=2"
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source) == ("orders", "reverse")
    assert (x.caller.name, x.caller.source) == ("frontend", "header")
