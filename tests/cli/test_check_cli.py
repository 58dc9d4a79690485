"""`tapproxy check` on a capture of real aiohttp services recorded through the real proxy.

The shop drifts from tests/contract/data/own/shop.yaml on purpose, once for every
mismatch class the own format has: inventory answers a 200 whose `qty` is a string (web
then fails with a 500, one hop up), an extra field, a wrong header, a missing field, a
value out of range, a call the contract does not know, calls out of order and too many,
a slow answer, a gRPC status, and an interaction never made.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import requests
from aiohttp import web
from jsonschema import Draft4Validator

from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.options import Address, RecordOptions, ServiceSpec
from tests.conftest import LoopThread, Proxy, Services, free_port, run_cli
from tests.spans.build import exchange, write_capture

DATA = Path(__file__).resolve().parent.parent / "contract" / "data"
SHOP = DATA / "own" / "shop.yaml"
T = "tests/test_shop.py::"


def _inventory() -> web.Application:
    async def item(request):
        n = int(request.match_info["id"])
        if n == 7:  # the drift: qty as a string, and a field the contract forbids
            return web.json_response({"id": n, "qty": "3", "debug": True})
        return web.json_response({"id": n, "qty": 3})

    async def reserve(request):
        body = await request.json()
        if not isinstance(body.get("qty"), int):
            return web.json_response({"error": "qty must be an integer"}, status=400)
        # The drift: no sku, more reserved than the contract allows, an old version.
        return web.json_response({"reserved": 5}, headers={"x-api-version": "1.4"})

    async def metrics(request):
        return web.Response(text="up 1\n")

    async def slow(request):
        await asyncio.sleep(0.3)  # six times its 50 ms budget
        return web.json_response({})

    async def rpc(request):
        await request.read()
        # A Trailers-Only gRPC answer: the status is in the headers.
        return web.Response(headers={"content-type": "application/grpc",
                                     "grpc-status": "13", "grpc-message": "stock db down"})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    app.router.add_post("/reserve", reserve)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/slow", slow)
    app.router.add_post("/inventory.Stock/Get", rpc)
    return app


def _web(inventory: str, proxy: list[Proxy]) -> web.Application:
    async def call(method: str, path: str, **kw):
        async with (aiohttp.ClientSession() as s,
                    s.request(method, inventory + path, proxy=proxy[0].url_as("web"),
                              **kw) as r):
            return r.status, await r.text()

    async def stock(request):
        _, text = await call("GET", f"/items/{request.match_info['id']}")
        try:
            return web.json_response({"available": json.loads(text)["qty"] - 1})
        except TypeError as e:  # "3" - 1: the string qty breaks web
            return web.json_response({"error": str(e)}, status=500)

    async def order(request):
        for _ in range(2):
            await call("POST", "/reserve", json={"sku": "A-1", "qty": 2})
        await call("GET", "/items/8")
        await call("GET", "/metrics")
        return web.json_response({"ok": True})

    async def version(request):
        return web.json_response({"v": 1})

    app = web.Application()
    app.router.add_get("/stock/{id}", stock)
    app.router.add_post("/order", order)
    app.router.add_get("/version", version)
    return app


def _in_test(proxy: Proxy, name: str, outcome: str, *calls) -> None:
    ctl, via = proxy.control_url, {"http": proxy.url_as("pytest")}
    assert requests.post(f"{ctl}/tests/start", json={"name": T + name}, timeout=10).ok
    for method, url, kw, status in calls:
        assert requests.request(method, url, proxies=via, timeout=20, **kw).status_code \
            == status
    assert requests.post(f"{ctl}/tests/end", json={"name": T + name, "outcome": outcome},
                         timeout=10).ok


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, confdir) -> Path:
    """The shop's four tests recorded once; the directory holds run.tap and shop.yaml."""
    where = tmp_path_factory.mktemp("check")
    loop = LoopThread()
    services = Services(loop)
    proxy: list[Proxy] = []
    try:
        inv = services.start("inventory", _inventory())
        webs = services.start("web", _web(inv.url, proxy))
        opts = RecordOptions(
            output=where / "run.tap", listen=Address("127.0.0.1", free_port()),
            control=Address("127.0.0.1", free_port()), confdir=confdir,
            services=(ServiceSpec("inventory", "127.0.0.1", inv.port),
                      ServiceSpec("web", "127.0.0.1", webs.port)))
        handle = RecordingProxy(opts)
        loop.run(handle.start())
        proxy.append(Proxy(opts, handle, loop))
        p = proxy[0]
        _in_test(p, "test_stock", "failed", ("GET", f"{webs.url}/stock/7", {}, 500))
        _in_test(p, "test_order", "passed", ("POST", f"{webs.url}/order", {}, 200),
                 ("GET", f"{webs.url}/version", {}, 200))
        _in_test(p, "test_refused", "passed",
                 ("POST", f"{inv.url}/reserve", {"json": {"qty": "x"}}, 400))
        _in_test(p, "test_slow", "passed", ("GET", f"{inv.url}/slow", {}, 200),
                 ("POST", f"{inv.url}/inventory.Stock/Get",
                  {"data": b"\0\0\0\0\0", "headers": {"content-type": "application/grpc"}},
                  200))
        p.stop()
    finally:
        services.stop_all()
        loop.close()
    shutil.copy(SHOP, where / "shop.yaml")
    return where


def check(where: Path, *args: str):
    return run_cli("check", "run.tap", *args, cwd=where)


def _key(m: dict) -> tuple:
    test = m["test"].removeprefix(T) if m["test"] else None
    return m["kind"], test, m["item"], m["where"]


EXPECTED = Counter({
    ("body-type", "test_stock", "item", "/qty"): 1,
    ("extra-field", "test_stock", "item", "/debug"): 1,
    ("status", "test_stock", "stock", "status"): 1,
    ("header", "test_order", "reserve", "header x-api-version"): 2,
    ("missing-field", "test_order", "reserve", "/sku"): 2,
    ("body-value", "test_order", "reserve", "/reserved"): 2,
    ("unexpected-interaction", "test_order", None, ""): 1,
    ("order", "test_order", "reserve", ""): 1,
    ("count", "test_order", "reserve", ""): 1,
    ("latency", "test_slow", "slow", ""): 1,
    ("grpc-status", "test_slow", "stock-rpc", "grpc-status"): 1,
    ("missing-interaction", None, "health", ""): 1,
})


def _line_of(text: str, needle: str) -> tuple[int, int]:
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n, line.index(needle) + 1
    raise AssertionError(needle)


def test_every_drift_is_one_mismatch_of_its_class(recorded) -> None:
    r = check(recorded, "--contract", "shop.yaml", "--format", "json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert Counter(_key(m) for m in out["mismatches"]) == EXPECTED
    assert (out["exchanges"], out["checked"], out["clean"]) == (11, 9, False)
    # The 200 with a string qty, and the 500 it caused one hop up.
    qty = next(m for m in out["mismatches"] if m["where"] == "/qty")
    assert (qty["caller"], qty["callee"], qty["side"]) == ("web", "inventory", "response")
    assert (qty["expected"], qty["actual"]) == ("integer", 'string "3"')
    assert '"qty": "3",  ◀' in qty["excerpt"]
    text = (recorded / "shop.yaml").read_text()
    line, column = _line_of(text, "qty: {type: integer}}")  # item's, not reserve's
    assert (qty["contract"]["line"], qty["contract"]["column"]) == \
        (line, column + len("qty: "))
    status = next(m for m in out["mismatches"] if m["kind"] == "status")
    assert (status["caller"], status["callee"], status["actual"]) == ("pytest", "web", "500")
    # The negative test (a documented 400 for a bad qty) is no mismatch.
    assert not [m for m in out["mismatches"] if m["test"] == T + "test_refused"]
    coverage = {i["id"]: i["calls"] for i in out["coverage"][0]["items"]}
    assert coverage == {"stock": 1, "item": 2, "reserve": 2, "refused": 1, "slow": 1,
                        "stock-rpc": 1, "health": 0}
    assert sorted(out["undocumented"], key=lambda e: e["route"]) == [
        {"caller": "pytest", "callee": "web", "method": "POST", "route": "/order", "calls": 1},
        {"caller": "pytest", "callee": "web", "method": "GET", "route": "/version", "calls": 1}]


def test_the_terminal_report_groups_by_test_and_edge_in_80_columns(recorded) -> None:
    r = check(recorded, "--contract", "shop.yaml")
    assert r.returncode == 1 and r.stderr == "", r.stderr  # no progress bar: not a tty
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    stock = lines.index(T + "test_stock")
    assert lines[stock + 1] == "  web → inventory  GET /items/{id}"
    assert lines[stock + 2] == "    ✗ body type or schema: response body /qty"
    assert lines[stock + 3:stock + 5] == ['      expected: integer', '      actual:   string "3"']
    assert '      │   "qty": "3",  ◀' in lines
    assert "  pytest → web  GET /stock/{id}" in lines
    assert "the capture as a whole" in lines
    health = next(line for line in lines if line.startswith("    health: "))
    assert health.startswith("    health: * → inventory GET /health ")
    assert health.endswith(" missed") and len(health) == 80
    whole = lines.index("  the test as a whole")
    assert lines[whole + 1:whole + 3] == ["    ✗ order", "      reserve came before item"]
    assert any("pytest → web  GET /version" in line for line in lines)
    assert lines[-1] == "15 mismatches in 3 tests; 6 of 7 items called; 11 exchanges, 9 checked"


def test_junit_has_a_testcase_per_interaction(recorded) -> None:
    r = check(recorded, "--contract", "shop.yaml", "--format", "junit")
    assert r.returncode == 1
    suite = ET.fromstring(r.stdout).find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failed = {name for name, c in cases.items() if c.find("failure") is not None}
    assert len(cases) == 8  # seven interactions and the calls none matches
    assert failed == set(cases) - {"refused: pytest → inventory POST /reserve"}
    assert suite.get("failures") == "7" and suite.get("tests") == "8"
    health = next(c for n, c in cases.items() if n.startswith("health"))
    assert health.find("failure").get("type") == "missing-interaction"


def test_sarif_is_valid_2_1_0_and_points_at_the_contract_lines(recorded) -> None:
    r = check(recorded, "--contract", "shop.yaml", "--format", "sarif")
    assert r.returncode == 1
    log = json.loads(r.stdout)
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    Draft4Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    assert len(results) == sum(EXPECTED.values())
    text = (recorded / "shop.yaml").read_text()
    by_rule = {res["ruleId"]: res for res in results}
    budget = by_rule["latency"]["locations"][0]["physicalLocation"]
    assert budget["artifactLocation"]["uri"] == "shop.yaml"
    line, column = _line_of(text, "budget: 50ms")
    assert budget["region"] == {"startLine": line, "startColumn": column + len("budget: ")}
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(k for k, *_ in EXPECTED)


def test_a_clean_check_exits_0(recorded) -> None:
    (recorded / "refused.yaml").write_text(
        "tapproxy: 1\ninteractions:\n  - caller: pytest\n    callee: inventory\n"
        "    request: {method: POST, path: /reserve, body: {qty: {type: integer}}}\n"
        "    response: {status: 400, body: {error: {type: string}}}\n")
    r = check(recorded, "--contract", "refused.yaml")
    assert (r.returncode, r.stderr) == (0, ""), r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == \
        "0 mismatches; 1 of 1 item called; 11 exchanges, 1 checked"
    r = check(recorded, "--contract", "refused.yaml", "--format", "sarif")
    assert r.returncode == 0
    log = json.loads(r.stdout)
    Draft4Validator(json.loads((DATA / "sarif-schema-2.1.0.json").read_text())).validate(log)
    assert log["runs"][0]["results"] == []


def test_a_capture_without_exchanges_fails(tmp_path) -> None:
    write_capture(tmp_path / "run.tap", [])
    shutil.copy(SHOP, tmp_path / "shop.yaml")
    r = check(tmp_path, "--contract", "shop.yaml")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "tapproxy: error: run.tap: no exchanges to check: nothing passes unseen"]
    sarif = check(tmp_path, "--contract", "shop.yaml", "--format", "sarif")
    log = json.loads(sarif.stdout)
    Draft4Validator(json.loads((DATA / "sarif-schema-2.1.0.json").read_text())).validate(log)
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False and sarif.returncode == 1
    junit = ET.fromstring(check(tmp_path, "--contract", "shop.yaml", "--format",
                                "junit").stdout)
    assert junit.find("testsuite/testcase/error") is not None
    write_capture(tmp_path / "run.tap", [exchange("a", "x", "y", 0, 1, path="/z")])
    (tmp_path / "any.yaml").write_text(
        "tapproxy: 1\ninteractions:\n  - request: {path: /q}\n    count: any\n")
    r = check(tmp_path, "--contract", "any.yaml")
    assert r.returncode == 1
    assert "no exchange is one any contract describes" in r.stderr


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.yaml", "tapproxy: 1\ninteractions: [\n", "bad.yaml:3:1: "),
    ("schema.yaml", "tapproxy: 1\ninteractions:\n  - request: {path: /x}\n    respons: {}\n",
     "schema.yaml:4:14: unknown key 'respons'"),
    ("notes.yaml", "hello: world\n", "notes.yaml: not a tapproxy expectation file"),
    ("missing.yaml", None, "missing.yaml: cannot read: No such file"),
])
def test_a_bad_contract_is_one_line_and_exit_2(tmp_path, name, text, message) -> None:
    write_capture(tmp_path / "run.tap", [exchange("a", "x", "y", 0, 1)])
    if text is not None:
        (tmp_path / name).write_text(text)
    r = check(tmp_path, "--contract", name)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("check", "nope.tap", "--contract", "shop.yaml"), "nope.tap: no such file"),
    (("check", "run.tap"), "give at least one --contract FILE"),
    (("check", "run.tap", "--contract", "shop.yaml", "--format", "xml"), "bad --format 'xml'"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message) -> None:
    write_capture(tmp_path / "run.tap", [exchange("a", "x", "y", 0, 1)])
    shutil.copy(SHOP, tmp_path / "shop.yaml")
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr


def test_contracts_of_several_kinds_in_one_pass(recorded) -> None:
    shutil.copy(DATA / "own" / "stock.proto", recorded / "stock.proto")
    r = check(recorded, "--contract", "shop.yaml", "--contract", "stock.proto",
              "--format", "json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert Counter(_key(m) for m in out["mismatches"]) == EXPECTED  # the call decodes
    grpc = out["coverage"][1]
    assert (grpc["contract"], grpc["kind"]) == ("stock.proto", "grpc")
    assert {i["id"]: i["calls"] for i in grpc["items"]} == \
        {"inventory.Stock/Get": 1, "inventory.Stock/Watch": 0}
    text = check(recorded, "--contract", "shop.yaml", "--contract", "stock.proto").stdout
    assert "  stock.proto (grpc)" in text.splitlines()


def test_a_progress_bar_only_on_a_terminal(recorded) -> None:
    import os
    import subprocess

    from tests.conftest import TAPPROXY

    main, side = os.openpty()
    try:
        r = subprocess.run([*TAPPROXY, "check", "run.tap", "--contract", "shop.yaml",
                            "--format", "json"], cwd=recorded, stdout=subprocess.PIPE,
                           stderr=side, timeout=60)
        os.close(side)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert r.returncode == 1
    assert b"checking" in shown  # the bar, on the terminal
    assert Counter(_key(m) for m in json.loads(r.stdout)["mismatches"]) == EXPECTED
