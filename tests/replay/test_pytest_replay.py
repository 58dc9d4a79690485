"""`pytest --tapproxy-replay`: a suite recorded once runs green without its services,
and a changed request fails its test with the near-miss table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port

SERVICE = '''
import itertools
from aiohttp import web

def make(argv=None):
    orders, ids = {}, itertools.count(1)

    async def create(request):
        n = next(ids)
        orders[n] = {"id": n, **(await request.json())}
        return web.json_response({"data": orders[n]}, status=201)

    async def get(request):
        n = int(request.match_info["id"])
        if n not in orders:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response({"data": orders[n]})

    app = web.Application()
    app.router.add_post("/orders", create)
    app.router.add_get("/orders/{id}", get)
    return app
'''

CONFTEST = '''
import os
import pytest

@pytest.fixture(scope="session")
def orders(tapproxy_service):
    port = tapproxy_service.worker_port(int(os.environ["ORDERS_PORT"]))
    return tapproxy_service("orders", app="orders_service:make", port=port)
'''

TESTS = '''
import os
import httpx

def test_missing_then_create_then_get(orders):
    assert httpx.get(f"{orders.url}/orders/1").status_code == 404
    sku = os.environ.get("SKU", "tea")
    created = httpx.post(f"{orders.url}/orders", json={"sku": sku, "qty": 2})
    assert created.status_code == 201
    got = httpx.get(f"{orders.url}/orders/{created.json()['data']['id']}")
    assert got.json()["data"]["sku"] == sku

def test_second_order(orders, tapproxy):
    created = httpx.post(f"{orders.url}/orders", json={"sku": "cup", "qty": 1})
    assert created.json()["data"]["id"] == 2
    # Recording: what went through the proxy; replaying: the recordings that answered.
    assert tapproxy.assert_called(callee="orders", method="POST", status=201)

def test_through_the_proxy_environment(orders, tapproxy):
    with httpx.Client(proxy=tapproxy.env["HTTP_PROXY"]) as client:
        assert client.get(f"{orders.url}/orders/1").json()["data"]["sku"] == "tea"

def test_tolerant(orders):
    httpx.get(f"{orders.url}/orders/{os.environ.get('LOOKUP', '1')}")  # any answer will do
'''


def _two_free_ports() -> int:
    import socket

    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


@pytest.fixture
def suite(pytester: pytest.Pytester, confdir: Path, monkeypatch):
    pytester.makepyfile(orders_service=SERVICE, conftest=CONFTEST, test_orders=TESTS)
    # Two free ports in a row: under xdist, worker gw1 serves on the second.
    monkeypatch.setenv("ORDERS_PORT", str(_two_free_ports()))

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                             f"--tapproxy-confdir={confdir}", *args,
                                             timeout=120)
    return run


@pytest.mark.slow
def test_record_once_then_replay_green_then_see_a_changed_request(suite, pytester,
                                                                  monkeypatch):
    capture = pytester.path / "run.tap"
    suite("--tapproxy", f"--tapproxy-capture={capture}").assert_outcomes(passed=4)

    # The service is gone (the session stopped it): the replay alone answers.
    replayed = suite(f"--tapproxy-replay={capture}")
    replayed.assert_outcomes(passed=4)
    out = replayed.stdout.str()
    assert "replayed: 6 matched, 0 unmatched, 0 of 6 recordings unused, accuracy 100.0 %" \
        in out

    # Under pytest-xdist each worker replays; the figures are the run's.
    spread = suite(f"--tapproxy-replay={capture}", "-n", "2")
    spread.assert_outcomes(passed=4)
    assert "replayed: 6 matched, 0 unmatched, 0 of 6 recordings unused, accuracy 100.0 %" \
        in spread.stdout.str()

    monkeypatch.setenv("SKU", "mug")
    monkeypatch.setenv("LOOKUP", "7")
    changed = suite(f"--tapproxy-replay={capture}")
    # The tolerant test fails too: its request had no recorded answer.
    changed.assert_outcomes(passed=2, failed=2)
    assert "FAILED test_orders.py::test_tolerant - tapproxy replay: 1 request(s)" \
        in changed.stdout.str()
    section = changed.stdout.str().split(" tapproxy replay -")[1]  # the failed test's
    lines = section.strip("-\n").splitlines()
    assert lines[:3] == [
        "no recorded answer for POST /orders to orders",
        "  in test test_missing_then_create_then_get",
        "nearest recorded requests:"]
    assert lines[3].lstrip().startswith("#2") and lines[3].endswith("body ✗")
    assert 'body /sku: recorded "tea", got "mug"' in lines[4]


@pytest.mark.slow
def test_an_unknown_capture_is_a_usage_error(suite, pytester):
    result = suite(f"--tapproxy-replay={pytester.path / 'none.tap'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--tapproxy-replay" in result.stderr.str() and "no such file" in result.stderr.str()


@pytest.mark.slow
def test_record_missing_sends_what_the_capture_lacks_to_the_started_service(
        suite, pytester, monkeypatch):
    from tapproxy.capture import open_capture

    capture = pytester.path / "run.tap"
    suite("--tapproxy", f"--tapproxy-capture={capture}").assert_outcomes(passed=4)
    monkeypatch.setenv("LOOKUP", "7")  # a GET nothing recorded: the live service's 404
    result = suite(f"--tapproxy-replay={capture}", "--tapproxy-record-missing")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    missing = pytester.path / "run-missing.tap"
    assert f"recorded 1 missing exchange(s) to {missing}" in out
    with open_capture(missing) as reader:
        [x] = list(reader.exchanges())
    assert (x.callee.name, x.request.path, x.status) == ("orders", "/orders/7", 404)
    assert x.test == "test_orders.py::test_tolerant"


def test_a_run_that_sent_the_replay_nothing_fails(pytester, confdir):
    from tests.replay.test_index import _exchange, _write

    capture = _write(pytester.path / "one.tap", [_exchange(1, "/x")])
    pytester.makepyfile(test_quiet="def test_quiet():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--tapproxy-confdir={confdir}",
                                           f"--tapproxy-replay={capture}", timeout=120)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "replayed nothing: no request reached the replay" in result.stdout.str()


def test_a_service_the_capture_never_called_fails_its_tests_saying_so(pytester, confdir):
    from tests.replay.test_index import _exchange, _write

    capture = _write(pytester.path / "one.tap", [_exchange(1, "/x")])
    pytester.makepyfile(test_pay='''
def test_pay(tapproxy_service):
    tapproxy_service("payments", app="nowhere:make", port=1)
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--tapproxy-confdir={confdir}",
                                           f"--tapproxy-replay={capture}", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*tapproxy: service payments: no exchange to payments in "
                                 f"{capture} (recorded: orders)*"])


def test_the_run_says_first_what_it_replays_and_what_it_cannot_serve_whole(pytester,
                                                                          confdir):
    import hashlib

    from tests.replay.test_index import _exchange, _write

    whole = b"x" * 5000
    capture = _write(pytester.path / "one.tap", [
        _exchange(1, "/big", answer=whole[:100], body_size=5000,
                  body_sha256=hashlib.sha256(whole).digest()), _exchange(2, "/x")])
    pytester.makepyfile(test_quiet="def test_quiet():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--tapproxy-confdir={confdir}",
                                           f"--tapproxy-replay={capture}", timeout=120)
    result.stdout.fnmatch_lines([
        f"tapproxy: replaying {capture} (2 exchanges)",
        "1 recorded response(s) kept only in part (over --max-body): never served",
        "  cut, they get a 502: #1",
        "collected 1 item"])
