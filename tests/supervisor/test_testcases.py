"""Test correlation through the control API and the x-tapproxy-test header, on the real proxy.

Every exchange belongs to the test open when it started, or to the test its header names;
tests may run concurrently without mixing, and several open tests are never guessed between.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, TestCase, open_capture
from tests.conftest import free_port
from tests.proxy.test_clients import echo_app


@pytest.fixture
def echo(services):
    return services.start("echo", echo_app())


def _control(proxy, method: str, route: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{proxy.control_url}{route}", timeout=10, **kwargs)


def _through(proxy) -> requests.Session:
    s = requests.Session()
    s.proxies = {"http": proxy.url}
    return s


def test_control_opened_test_owns_its_exchanges_and_is_recorded_when_closed(proxy, echo):
    s = _through(proxy)
    assert s.get(f"{echo.url}/before", timeout=10).status_code == 200
    r = _control(proxy, "POST", "/tests/start", json={"name": "t1"})
    assert (r.status_code, r.json()) == (201, {"open": "t1"})
    for i in range(3):
        assert s.post(f"{echo.url}/during/{i}", data=b"x", timeout=10).status_code == 201
    r = _control(proxy, "POST", "/tests/end", json={"name": "t1", "outcome": "failed"})
    assert (r.status_code, r.json()) == (200, {"closed": "t1", "outcome": "failed",
                                             "requests": 3})
    assert s.get(f"{echo.url}/after", timeout=10).status_code == 200

    records = proxy.records()
    [case] = [r for r in records if isinstance(r, TestCase)]
    assert (case.name, case.outcome) == ("t1", "failed")
    by_path = {r.request.path: r for r in records if isinstance(r, Exchange)}
    assert set(by_path) == {"/before", "/during/0", "/during/1", "/during/2", "/after"}
    for path in ("/during/0", "/during/1", "/during/2"):
        x = by_path[path]
        assert (x.test, x.test_source) == ("t1", "control")
        assert case.started <= x.timing.request_start <= x.timing.end <= case.ended
        # A streaming reader meets a test's exchanges before the test's own record.
        assert records.index(x) < records.index(case)
    for path in ("/before", "/after"):
        assert (by_path[path].test, by_path[path].test_source) == (None, None)


def test_outcome_is_optional(proxy):
    assert _control(proxy, "POST", "/tests/start", json={"name": "t"}).status_code == 201
    r = _control(proxy, "POST", "/tests/end", json={"name": "t"})
    assert (r.status_code, r.json()) == (200, {"closed": "t", "outcome": None, "requests": 0})
    [case] = proxy.records()
    assert isinstance(case, TestCase) and case.outcome is None and case.ended >= case.started


def test_control_errors_name_the_problem(proxy):
    assert _control(proxy, "POST", "/tests/start", json={"name": "a"}).status_code == 201
    r = _control(proxy, "POST", "/tests/start", json={"name": "a"})
    assert r.status_code == 409 and "already open" in r.json()["error"]
    r = _control(proxy, "POST", "/tests/end", json={"name": "never-opened"})
    assert r.status_code == 404 and "'never-opened' is not open" in r.json()["error"]
    assert _control(proxy, "POST", "/tests/start", json={"name": "b"}).status_code == 201
    assert _control(proxy, "GET", "/tests").json() == {"open": ["a", "b"]}
    assert _control(proxy, "POST", "/tests/end", json={"name": "a"}).status_code == 200
    # Closing twice is closing a test that is not open.
    assert _control(proxy, "POST", "/tests/end", json={"name": "a"}).status_code == 404
    assert _control(proxy, "GET", "/tests").json() == {"open": ["b"]}


@pytest.mark.parametrize("route", ["/tests/start", "/tests/end"])
@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b'{"name": "t"', b"[\"t\"]", b'"t"', b"{}", b'{"name": 3}',
     b'{"name": null}', b'{"name": ""}', b'{"name": ["t"]}', b"\xff\xfe"],
    ids=["text", "empty", "truncated", "list", "string", "no-name", "int-name", "null-name",
         "empty-name", "list-name", "not-utf8"],
)
def test_bad_bodies_are_400_and_change_nothing(proxy, route, body):
    assert _control(proxy, "POST", "/tests/start", json={"name": "open"}).status_code == 201
    r = _control(proxy, "POST", route, data=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON object" in r.text
    assert _control(proxy, "GET", "/tests").json() == {"open": ["open"]}


def test_outcome_that_is_not_a_string_is_400(proxy):
    assert _control(proxy, "POST", "/tests/start", json={"name": "t"}).status_code == 201
    r = _control(proxy, "POST", "/tests/end", json={"name": "t", "outcome": {"x": 1}})
    assert r.status_code == 400
    assert _control(proxy, "GET", "/tests").json() == {"open": ["t"]}


def test_stats_count_exchanges_and_errors(proxy, services):
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/fail", fail)
    app.router.add_get("/ok", ok)
    svc = services.start("svc", app)
    s = _through(proxy)
    assert s.get(f"{svc.url}/ok", timeout=10).status_code == 200
    assert s.get(f"{svc.url}/ok", timeout=10).status_code == 200
    assert s.get(f"{svc.url}/fail", timeout=10).status_code == 503
    refused = s.get(f"http://127.0.0.1:{free_port()}/nobody", timeout=10)
    assert refused.status_code == 502  # mitmproxy's answer when the service is not there
    assert _control(proxy, "POST", "/tests/start", json={"name": "open"}).status_code == 201

    stats = _control(proxy, "GET", "/stats").json()
    assert (stats["exchanges"], stats["errors"]) == (4, 2)
    assert stats["open_tests"] == ["open"]
    assert stats["capture"] == str(proxy.capture.resolve())
    kinds = sorted((x.request.path, x.status, x.error.kind if x.error else "")
                   for x in proxy.exchanges())
    assert kinds == [("/fail", 503, ""), ("/nobody", None, "refused"), ("/ok", 200, ""),
                     ("/ok", 200, "")]


def test_flush_reports_what_a_reader_then_sees(proxy, echo):
    s = _through(proxy)
    assert _control(proxy, "POST", "/tests/start", json={"name": "t"}).status_code == 201
    for i in range(25):
        s.get(f"{echo.url}/{i}", timeout=10)
    assert _control(proxy, "POST", "/tests/end", json={"name": "t"}).status_code == 200
    r = _control(proxy, "POST", "/flush")
    assert r.status_code == 200 and r.json() == {"records": 26}
    # Read the file directly while the proxy keeps running: no extra flush by the fixture.
    with open_capture(proxy.capture) as reader:
        records = list(reader)
        assert not reader.truncated
    assert len(records) == 26
    assert sum(isinstance(r, Exchange) for r in records) == 25


async def _send_as(proxy, url: str, test: str | None, count: int) -> list[dict]:
    headers = {"x-tapproxy-test": test} if test else {}
    async with aiohttp.ClientSession(proxy=proxy.url, headers=headers) as c:

        async def one(i: int) -> dict:
            async with c.post(f"{url}/{test or 'none'}/{i}", data=f"{test}:{i}") as r:
                assert r.status == 201
                return await r.json()

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_concurrent_tests_with_headers_never_mix(proxy, echo):
    for name in ("alpha", "beta"):
        assert _control(proxy, "POST", "/tests/start", json={"name": name}).status_code == 201

    async def both():
        return await asyncio.gather(_send_as(proxy, echo.url, "alpha", 60),
                                    _send_as(proxy, echo.url, "beta", 60),
                                    _send_as(proxy, echo.url, None, 10))

    seen = [x for batch in asyncio.run(both()) for x in batch]
    for name in ("alpha", "beta"):
        assert _control(proxy, "POST", "/tests/end", json={"name": name}).status_code == 200

    assert len(seen) == 130
    for echoed in seen:  # what reached the service
        assert not any(k.lower().startswith("x-tapproxy-") for k, _ in echoed["headers"])
    xs = proxy.exchanges()
    assert len(xs) == 130
    counts: dict[tuple, int] = {}
    for x in xs:
        _, path_test, _ = x.request.path.split("/")
        assert x.request.body.decode().split(":")[0] == (path_test if x.test else "None")
        key = (x.test, x.test_source)
        counts[key] = counts.get(key, 0) + 1
        if path_test == "none":
            assert key == (None, "ambiguous")
        else:
            assert key == (path_test, "header")
        assert "x-tapproxy-test" not in x.request.headers
        assert not any(k.lower().startswith("x-tapproxy-")
                       for k, _ in json.loads(x.response.body)["headers"])
    assert counts == {("alpha", "header"): 60, ("beta", "header"): 60,
                      (None, "ambiguous"): 10}


def test_header_wins_over_the_control_opened_test(proxy, echo):
    assert _control(proxy, "POST", "/tests/start", json={"name": "outer"}).status_code == 201
    s = _through(proxy)
    s.get(f"{echo.url}/named", headers={"x-tapproxy-test": "inner"}, timeout=10)
    s.get(f"{echo.url}/unnamed", timeout=10)
    xs = {x.request.path: (x.test, x.test_source) for x in proxy.exchanges()}
    assert xs == {"/named": ("inner", "header"), "/unnamed": ("outer", "control")}


def test_test_left_open_is_recorded_without_end_or_outcome(proxy, echo):
    assert _control(proxy, "POST", "/tests/start", json={"name": "dangling"}).status_code == 201
    assert _control(proxy, "POST", "/tests/start", json={"name": "closed"}).status_code == 201
    assert _control(proxy, "POST", "/tests/end",
                    json={"name": "closed", "outcome": "passed"}).status_code == 200
    _through(proxy).get(f"{echo.url}/inside", timeout=10)
    proxy.stop()

    with open_capture(proxy.capture) as reader:
        records = list(reader)
        assert not reader.truncated
    cases = {r.name: r for r in records if isinstance(r, TestCase)}
    assert set(cases) == {"dangling", "closed"}
    left = cases["dangling"]
    assert (left.ended, left.outcome) == (None, None)
    assert cases["closed"].outcome == "passed" and cases["closed"].ended is not None
    [x] = [r for r in records if isinstance(r, Exchange)]
    assert (x.test, x.test_source) == ("dangling", "control")
    assert left.started <= x.timing.request_start


def test_a_test_that_sent_nothing_counts_zero_requests(proxy, echo):
    s = _through(proxy)
    assert _control(proxy, "POST", "/tests/start", json={"name": "busy"}).status_code == 201
    assert s.get(f"{echo.url}/busy", timeout=10).status_code == 200
    assert _control(proxy, "POST", "/tests/end", json={"name": "busy"}).status_code == 200
    r = _control(proxy, "POST", "/tests/start", json={"name": "quiet"})
    assert (r.status_code, r.json()) == (201, {"open": "quiet"})
    r = _control(proxy, "POST", "/tests/end", json={"name": "quiet", "outcome": "passed"})
    assert (r.status_code, r.json()) == (200, {"closed": "quiet", "outcome": "passed",
                                             "requests": 0})
    assert s.get(f"{echo.url}/after", timeout=10).status_code == 200  # after it: not its

    records = proxy.records()
    cases = {r.name: r for r in records if isinstance(r, TestCase)}
    assert set(cases) == {"busy", "quiet"}
    quiet = cases["quiet"]
    assert quiet.outcome == "passed" and quiet.started <= quiet.ended
    owners = {x.request.path: x.test for x in records if isinstance(x, Exchange)}
    assert owners == {"/busy": "busy", "/after": None}  # none is the quiet test's


def test_services_names_a_callee_address_from_then_on(proxy, echo):
    s = _through(proxy)
    s.get(f"{echo.url}/before", timeout=10)
    r = _control(proxy, "POST", "/services",
                 json={"name": "echo", "address": f"127.0.0.1:{echo.port}"})
    assert r.status_code == 201
    s.get(f"{echo.url}/after", timeout=10)
    callees = {x.request.path: (x.callee.name, x.callee.source) for x in proxy.exchanges()}
    assert callees == {"/before": ("127.0.0.1", "host"), "/after": ("echo", "service-map")}


@pytest.mark.parametrize("body", [{"name": "echo"}, {"name": "echo", "address": "nope"}])
def test_services_with_a_bad_address_is_a_400_naming_it(proxy, body):
    r = _control(proxy, "POST", "/services", json=body)
    assert r.status_code == 400
    assert "address" in r.text


def test_services_with_a_host_names_it_at_any_port(proxy, echo):
    r = _control(proxy, "POST", "/services", json={"name": "echo", "host": "127.0.0.1"})
    assert (r.status_code, r.json()) == (201, {"service": "echo", "host": "127.0.0.1"})
    _through(proxy).get(f"{echo.url}/named", timeout=10)
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source) == ("echo", "service-map")


def test_a_tests_records_come_as_a_capture_of_their_own(proxy, echo, tmp_path):
    """For a harness that cannot read the proxy's capture file (a sidecar, another host)."""
    s = _through(proxy)
    for name in ("t1", "t2"):
        _control(proxy, "POST", "/tests/start", json={"name": name})
        s.get(f"{echo.url}/{name}/a", timeout=10)
        s.get(f"{echo.url}/{name}/b", timeout=10)
        if name == "t1":
            _control(proxy, "POST", "/tests/end", json={"name": name, "outcome": "passed"})
    r = _control(proxy, "GET", "/tests/exchanges", params={"test": "t1"})  # closed
    assert r.headers["content-type"] == "application/vnd.tapproxy.capture"
    (tmp_path / "t1.tap").write_bytes(r.content)
    with open_capture(tmp_path / "t1.tap") as reader:
        records = list(reader)
    assert [x.request.path for x in records if isinstance(x, Exchange)] == ["/t1/a", "/t1/b"]
    assert [(t.name, t.outcome) for t in records if isinstance(t, TestCase)] == [
        ("t1", "passed")]
    r = _control(proxy, "GET", "/tests/exchanges", params={"test": "t2"})  # still open
    (tmp_path / "t2.tap").write_bytes(r.content)
    with open_capture(tmp_path / "t2.tap") as reader:
        assert [x.request.path for x in reader.exchanges()] == ["/t2/a", "/t2/b"]


def test_a_tests_records_without_a_test_name_is_a_400(proxy):
    r = _control(proxy, "GET", "/tests/exchanges")
    assert r.status_code == 400
    assert "test=NAME" in r.json()["error"]


def test_a_tests_records_from_a_capture_gone_is_an_error_saying_so(proxy, echo):
    proxy.capture.rename(proxy.capture.with_name("moved.tap"))
    r = _control(proxy, "GET", "/tests/exchanges", params={"test": "t1"})
    assert r.status_code == 500
    assert r.json()["error"] == (f"the proxy cannot read its own capture: "
                                 f"{proxy.capture.resolve()}: no such file")


def test_services_with_a_pid_names_this_hosts_process_as_caller(proxy, echo):
    import os

    import psutil

    pid = os.getpid()
    started = psutil.Process(pid).create_time()
    r = _control(proxy, "POST", "/services",
                 json={"name": "harness", "pid": pid, "started": started})
    assert (r.status_code, r.json()) == (201, {"service": "harness", "pid": pid})
    _through(proxy).get(f"{echo.url}/named", timeout=10)
    [x] = proxy.exchanges()
    assert x.caller.name == "harness" and x.caller.pid == pid


@pytest.mark.parametrize("shift", [30.0, -3600.0])
def test_services_with_a_pid_of_another_namespace_is_409_and_names_nothing(
        proxy, echo, shift):
    import os

    import psutil

    pid = os.getpid()  # the same number, another start time: another host's process
    started = psutil.Process(pid).create_time() + shift
    r = _control(proxy, "POST", "/services",
                 json={"name": "harness", "pid": pid, "started": started})
    assert r.status_code == 409 and "not one of this host's" in r.json()["error"]
    _through(proxy).get(f"{echo.url}/unnamed", timeout=10)
    [x] = proxy.exchanges()
    assert x.caller.name != "harness"


@pytest.mark.parametrize("body", [{"name": "h", "pid": "1", "started": 1.0},
                                  {"name": "h", "pid": 1},
                                  {"name": "h", "pid": True, "started": 1.0},
                                  {"name": "h", "pid": 1, "started": 1.0, "descendants": 1}])
def test_services_with_a_bad_pid_is_a_400(proxy, body):
    r = _control(proxy, "POST", "/services", json=body)
    assert r.status_code == 400 and '"pid" must be a process id' in r.json()["error"]
