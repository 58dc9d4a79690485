"""A real headless Chromium (Debian's package) through a named listener.

Chromium cannot send proxy credentials (`http://name:pw@proxy` gives
ERR_NO_SUPPORTED_PROXIES), so a named listener is how it gets a name. Its own background
calls to public hosts (update checks, network time — made despite every flag that
should stop them) are kept out of the exchanges with --allow-hosts.

Those background calls go to the proxy, and a proxy relays what it does not record: so
the page, the proxy and Chromium run together in a network namespace of their own with
nothing but loopback (`unshare -n`, as root), and no packet can leave the machine.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, Tunnel, open_capture
from tests.conftest import ROOT, TAPPROXY, free_port, missing_permission, missing_tool

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@functools.cache
def _netns_reason() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) missing: no private network namespace"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return ("cannot make a network namespace here (needs root or user namespaces): "
                f"{probe.stderr.strip()}; Chromium's background calls would leave the machine")
    return None


@pytest.fixture(autouse=True)
def _chromium_in_a_network_of_its_own() -> None:
    if CHROMIUM is None:  # scripts/setup installs it: a failure under CI=true
        missing_tool("chromium is not installed (scripts/setup installs Debian's package "
                     "with apt-get; it could not here)")
    reason = _netns_reason()
    if reason is not None:
        missing_permission(reason)


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


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} never listened on {port}")


def _inside_namespace(work: Path) -> None:
    """Run in the private namespace: the page, `tapproxy record`, Chromium; then stop."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    site_port, browser_port, control_port = free_port(), free_port(), free_port()
    site = subprocess.Popen([sys.executable, __file__, "--serve", str(site_port)])
    proxy = subprocess.Popen(
        [*TAPPROXY, "record", "-o", str(work / "run.tap"),
         "--listen", f"127.0.0.1:{free_port()}",
         "--listen", f"browser=127.0.0.1:{browser_port}",
         "--control", f"127.0.0.1:{control_port}",
         "--allow-hosts", r"^127\.0\.0\.1:\d+$", "--confdir", str(work / "confdir")],
        stdout=subprocess.DEVNULL, stderr=open(work / "proxy.err", "w"), cwd=ROOT)  # noqa: SIM115
    try:
        _wait_port(site_port, site, "the page")
        _wait_port(control_port, proxy, "tapproxy record")
        control = f"http://127.0.0.1:{control_port}"
        requests.post(f"{control}/tests/start", json={"name": "test_page"}, timeout=5)
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             f"--user-data-dir={work / 'profile'}",
             f"--proxy-server=http://127.0.0.1:{browser_port}",
             # Chromium never proxies loopback unless told to: "<-loopback>" drops that rule.
             "--proxy-bypass-list=<-loopback>", "--dump-dom",
             f"http://127.0.0.1:{site_port}/"],
            capture_output=True, text=True, timeout=120)
        (work / "dom.html").write_text(out.stdout)
        (work / "chromium.err").write_text(out.stderr[-4000:])
        requests.post(f"{control}/tests/end", json={"name": "test_page"}, timeout=5)
        (work / "site.port").write_text(str(site_port))
    finally:
        proxy.send_signal(signal.SIGINT)
        proxy.wait(30)
        site.terminate()
        site.wait(10)


def test_headless_chromium_is_recorded_under_its_listeners_name(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["unshare", "-n", sys.executable, __file__, "--inside", str(tmp_path)],
                         capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    dom = (tmp_path / "dom.html").read_text()
    assert "<title>ran</title>" in dom and "<h1>shop</h1>" in dom, (
        (tmp_path / "chromium.err").read_text())  # the script ran: the page came through
    site_port = int((tmp_path / "site.port").read_text())

    with open_capture(tmp_path / "run.tap") as reader:
        records = list(reader)
    exchanges = [r for r in records if isinstance(r, Exchange)]
    assert {"/", "/app.js", "/logo.png"} <= {x.request.path for x in exchanges}
    for x in exchanges:  # only the page's own requests: nothing of Chromium's background
        assert (x.caller.name, x.caller.source) == ("browser", "listener")
        assert x.callee.address == f"127.0.0.1:{site_port}"
        assert x.test == "test_page"
    assert {x.request.path: x.status for x in exchanges}["/logo.png"] == 200
    # Its calls to other hosts (update checks, network time…), if any, are ignored tunnels.
    for t in (r for r in records if isinstance(r, Tunnel)):
        assert t.reason == "ignored" and not t.callee.address.startswith("127.0.0.1:")
        assert t.caller.name == "browser"


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        web.run_app(page_app(), host="127.0.0.1", port=int(sys.argv[2]), print=None)
    elif sys.argv[1] == "--inside":
        _inside_namespace(Path(sys.argv[2]))
