"""A real headless Chromium (Debian's package) through a named listener.

Chromium cannot send proxy credentials (`http://name:pw@proxy` gives
ERR_NO_SUPPORTED_PROXIES), so a named listener is how it gets a name. Its own background
calls to public hosts are kept out of the exchanges with --allow-hosts.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, Tunnel
from tapproxy.proxy.options import Address, ListenerSpec
from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs Debian's "
                             "package with apt-get; it could not here)")

PAGE = ('<html><head><script src="/app.js"></script></head>'
        '<body><h1>shop</h1><img src="/logo.png"></body></html>')


def page_app() -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text='document.title = "ran";', content_type="text/javascript")

    async def logo(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/app.js", script)
    app.router.add_get("/logo.png", logo)
    return app


def chromium_dump_dom(url: str, proxy: str, profile) -> str:
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--proxy-server={proxy}",
         # Chromium never proxies loopback unless told to: "<-loopback>" removes that rule.
         "--proxy-bypass-list=<-loopback>", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_headless_chromium_is_recorded_under_its_listeners_name(start_proxy, services,
                                                                tmp_path):
    site = services.start("site", page_app())
    browser = Address("127.0.0.1", free_port())
    proxy = start_proxy(listeners=(ListenerSpec("browser", browser),),
                        allow_hosts=(r"^127\.0\.0\.1:\d+$",))
    requests.post(f"{proxy.control_url}/tests/start", json={"name": "test_page"}, timeout=5)

    dom = chromium_dump_dom(f"{site.url}/", f"http://{browser}", tmp_path / "profile")
    assert "<title>ran</title>" in dom and "<h1>shop</h1>" in dom  # the script ran

    requests.post(f"{proxy.control_url}/tests/end", json={"name": "test_page"}, timeout=5)
    proxy.stop()
    records = proxy.records()
    exchanges = [r for r in records if isinstance(r, Exchange)]
    assert {"/", "/app.js", "/logo.png"} <= {x.request.path for x in exchanges}
    for x in exchanges:  # only the page's own requests: nothing of Chromium's background
        assert (x.caller.name, x.caller.source) == ("browser", "listener")
        assert x.callee.address == f"127.0.0.1:{site.port}"
        assert x.test == "test_page"
    assert {x.request.path: x.status for x in exchanges}["/logo.png"] == 200
    # Its calls to other hosts (update checks, network time…), if any, are ignored tunnels.
    for t in (r for r in records if isinstance(r, Tunnel)):
        assert t.reason == "ignored" and not t.callee.address.startswith("127.0.0.1:")
        assert t.caller.name == "browser"
