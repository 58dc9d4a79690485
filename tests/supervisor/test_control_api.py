"""The control API is for harnesses only: not through the proxy, not from a web page.

Real clients (curl, httpx) against the real proxy and its real control API; each refusal
must say why, and a refused request through the proxy is still recorded.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import httpx
import pytest

from tapproxy.supervisor.options import Address


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True, timeout=30)


def _status_and_body(done: subprocess.CompletedProcess) -> tuple[int, str]:
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def _open_tests(proxy) -> list[str]:
    return httpx.get(f"{proxy.control_url}/tests", timeout=10).json()["open"]


# -- not through the proxy --------------------------------------------------------------------


def test_the_issue_reproduction_is_refused_and_recorded(proxy):
    done = _curl("-x", proxy.url, "-X", "POST", f"{proxy.control_url}/tests/start",
                 "-H", "Content-Type: application/json", "-d", '{"name": "evil"}')
    status, body = _status_and_body(done)
    assert status == 403
    assert "does not forward to its own control API" in body
    assert _open_tests(proxy) == []
    [x] = proxy.exchanges()
    assert (x.request.method, x.request.path, x.status) == ("POST", "/tests/start", 403)
    assert b"control API" in x.response.body


def test_a_large_upload_to_the_control_api_is_refused_too(proxy, tmp_path):
    """A body above --max-body would stream on; a refused request must not."""
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (3 * 1024 * 1024) + b"}")
    status, body = _status_and_body(_curl(
        "-x", proxy.url, "-H", "Content-Type: application/json", "--data-binary", f"@{big}",
        f"{proxy.control_url}/tests/start"))
    assert status == 403 and "control API" in body
    [x] = proxy.exchanges()
    assert x.status == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0"])
def test_every_name_of_the_control_address_is_refused(proxy, host):
    # curl, not httpx: httpx writes an IPv6 target without its brackets.
    status, body = _status_and_body(
        _curl("-x", proxy.url, f"http://{host}:{proxy.handle.control.port}/stats"))
    assert status == 403 and "control API" in body


def test_connect_to_the_control_api_is_refused_and_recorded(proxy):
    done = _curl("-x", proxy.url, "-p", f"http://127.0.0.1:{proxy.handle.control.port}/stats")
    assert done.returncode != 0
    assert "403" in done.stderr  # curl: CONNECT tunnel failed, response 403
    [x] = proxy.exchanges()
    assert (x.request.method, x.status) == ("CONNECT", 403)


def test_the_forward_listener_and_the_otlp_receiver_are_refused(start_proxy):
    from tests.conftest import free_port

    proxy = start_proxy(otlp_receive=Address("127.0.0.1", free_port()))
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        to_self = client.get(f"http://127.0.0.1:{proxy.options.listen.port}/")
        to_receiver = client.post(f"http://127.0.0.1:{proxy.options.otlp_receive.port}/v1/traces",
                                  content=b"{}", headers={"Content-Type": "application/json"})
    assert to_self.status_code == 403 and "forward proxy listener" in to_self.text
    assert to_receiver.status_code == 403 and "OTLP receiver" in to_receiver.text
    assert sorted(x.status for x in proxy.exchanges()) == [403, 403]


# -- not from a web page ----------------------------------------------------------------------


def test_text_plain_with_a_foreign_origin_is_refused(proxy):
    done = _curl("-X", "POST", f"{proxy.control_url}/tests/start",
                 "-H", "Content-Type: text/plain", "-H", "Origin: https://evil.example",
                 "-d", '{"name": "evil"}')
    status, body = _status_and_body(done)
    assert status == 403 and "evil.example" in json.loads(body)["error"]
    assert _open_tests(proxy) == []


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", None])
def test_bodies_that_are_not_declared_json_are_415(proxy, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = httpx.post(f"{proxy.control_url}/tests/start", content=b'{"name": "t"}',
                   headers=headers, timeout=10)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert _open_tests(proxy) == []


def test_a_bodiless_post_needs_no_content_type(proxy):
    # aiohttp's post() without data sends `Content-Type: application/octet-stream` and
    # no body: there is nothing to read, so nothing whose type matters.
    async def flush() -> tuple[int, dict]:
        async with (aiohttp.ClientSession() as session,
                    session.post(f"{proxy.control_url}/flush") as r):
            return r.status, await r.json()

    status, body = asyncio.run(flush())
    assert status == 200 and body["records"] >= 0
    done = _curl("-X", "POST", "-H", "Content-Type: text/plain", f"{proxy.control_url}/flush")
    assert _status_and_body(done)[0] == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1",
                                    "http://evil.example:{port}"])
def test_foreign_origins_are_refused_even_with_json(proxy, origin):
    origin = origin.format(port=proxy.handle.control.port)
    r = httpx.post(f"{proxy.control_url}/tests/start", json={"name": "t"},
                   headers={"Origin": origin}, timeout=10)
    assert r.status_code == 403 and "Origin" in r.json()["error"]
    r = httpx.get(f"{proxy.control_url}/stats", headers={"Origin": origin}, timeout=10)
    assert r.status_code == 403
    assert _open_tests(proxy) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_its_own_loopback_origin_and_no_origin_are_accepted(proxy, host):
    own = f"http://{host}:{proxy.handle.control.port}"
    r = httpx.post(f"{proxy.control_url}/tests/start", json={"name": host},
                   headers={"Origin": own}, timeout=10)
    assert r.status_code == 201
    done = _curl("-X", "POST", f"{proxy.control_url}/flush")  # no body, no Content-Type
    assert _status_and_body(done)[0] == 200


# -- bad input: clear JSON errors -------------------------------------------------------------


def test_a_huge_body_is_413_with_a_json_error(proxy):
    r = httpx.post(f"{proxy.control_url}/tests/start", content=b"[" * 100_000,
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413 and "body size" in r.json()["error"]


def test_deep_nesting_within_the_size_limit_is_400(proxy):
    r = httpx.post(f"{proxy.control_url}/tests/start", content=b"[" * 50_000,
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and "JSON object" in r.json()["error"]


def test_test_names_are_capped_at_1_kib(proxy):
    ok = httpx.post(f"{proxy.control_url}/tests/start", json={"name": "é" * 512}, timeout=10)
    assert ok.status_code == 201
    long = httpx.post(f"{proxy.control_url}/tests/start", json={"name": "x" * 1025}, timeout=10)
    assert long.status_code == 400 and "1024 bytes" in long.json()["error"]
    assert _open_tests(proxy) == ["é" * 512]


def test_unknown_routes_answer_json(proxy):
    r = httpx.get(f"{proxy.control_url}/nope", timeout=10)
    assert r.status_code == 404 and "error" in r.json()


def test_the_control_api_does_not_import_the_recorder():
    """control.py drives a small protocol; recorder.py imports it, not the other way round."""
    import ast

    import tapproxy.supervisor.control as control

    tree = ast.parse(Path(control.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.endswith("recorder") or "mitmproxy" in m)}
