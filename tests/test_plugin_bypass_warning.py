"""A service whose callers ignore HTTP_PROXY: the README's way (port=) records it, and
the warning for a test that recorded nothing says so. Run by pytest in a subprocess
(pytester), with a real aiohttp service and a client that sends no proxy settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapproxy.capture import Exchange, open_capture
from tests.conftest import free_port

SERVICE = """
from aiohttp import web

def make_app(argv):
    async def hello(request):
        return web.json_response({"hello": request.path})
    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    return app
"""

# urllib with no ProxyHandler: like Node, Go or aiohttp's default ClientSession, it
# calls the service directly whatever HTTP_PROXY says.
TEST = """
import urllib.request

def test_hello(tapproxy_service):
    svc = tapproxy_service("hello", app="hello:make_app"{port})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
    assert opener.open(f"{{svc.url}}/hi", timeout=10).read() == b'{{"hello": "/hi"}}'
"""


def _run(pytester: pytest.Pytester, confdir: Path, port: str) -> pytest.RunResult:
    pytester.makepyfile(hello=SERVICE, test_hello=TEST.format(port=port))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--tapproxy", f"--tapproxy-confdir={confdir}",
        f"--tapproxy-capture={pytester.path / 'run.tap'}", timeout=120)


def _exchanges(pytester: pytest.Pytester) -> list[Exchange]:
    with open_capture(pytester.path / "run.tap") as reader:
        return [r for r in reader if isinstance(r, Exchange)]


def test_a_test_that_went_around_the_proxy_is_told_about_port(pytester, confdir):
    result = _run(pytester, confdir, "")
    result.assert_outcomes(passed=1, warnings=1)
    text = " ".join(result.stdout.str().split())  # pytest wraps the warning
    assert "tapproxy: nothing went through the proxy during this test" in text
    assert "tapproxy_service(..., port=P)" in text
    assert _exchanges(pytester) == []


def test_with_port_a_client_that_ignores_the_proxy_is_recorded(pytester, confdir):
    result = _run(pytester, confdir, f", port={free_port()}")
    result.assert_outcomes(passed=1)
    assert "nothing went through the proxy" not in result.stdout.str()
    [x] = _exchanges(pytester)
    assert (x.callee.name, x.request.path, x.status) == ("hello", "/hi", 200)
