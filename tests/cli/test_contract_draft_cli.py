"""`tapproxy contract draft` end to end: real aiohttp services recorded through the real
proxy, drafted by the CLI, the drafts checked by `tapproxy check`.

The orders service hands out new ids, UUIDs and timestamps on every call, so a second
recording of the same tests differs wherever a service is not deterministic; a third
recording drifts for real: a field's type, a field lost, a status.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import requests
from aiohttp import web

from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.options import Address, RecordOptions, ServiceSpec
from tests.conftest import LoopThread, Proxy, Services, free_port, run_cli

T = "tests/test_shop.py::"
DRIFT: set[str] = set()  # what the services get wrong in the recording being made


def _orders() -> web.Application:
    ids = itertools.count(1)  # as a database would: never the same id twice
    made: dict[int, dict] = {}

    def view(order: dict) -> dict:
        out = dict(order)
        if "type" in DRIFT:
            out["qty"] = str(out["qty"])
        return out

    async def create(request):
        sent = await request.json()
        n = next(ids)
        made[n] = {"id": n, "ref": str(uuid.uuid4()),
                   "createdAt": datetime.now(UTC).isoformat(), "sku": sent["sku"],
                   "qty": sent["qty"], "state": "open", "note": None}
        return web.json_response(made[n], status=200 if "status" in DRIFT else 201)

    async def one(request):
        order = made.get(int(request.match_info["id"]))
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(view(order))

    async def listing(request):
        last = [dict(o) for o in list(made.values())[-int(request.query["limit"]):]]
        for o in last:
            if "missing" in DRIFT:
                del o["state"]
        return web.json_response(last)

    app = web.Application()
    app.router.add_post("/orders", create)
    app.router.add_get("/orders", listing)
    app.router.add_get("/orders/{id}", one)
    return app


def _web(orders: str, proxy: list[Proxy]) -> web.Application:
    async def checkout(request):
        async with aiohttp.ClientSession() as s:
            via = proxy[-1].url_as("web")
            async with s.post(f"{orders}/orders", json={"sku": "A-1", "qty": 2},
                              proxy=via) as r:
                made = await r.json()
            async with s.get(f"{orders}/orders/{made['id']}", proxy=via) as r:
                await r.read()
        return web.json_response({"orderId": made["id"], "ok": True,
                                  "at": datetime.now(UTC).isoformat()})

    app = web.Application()
    app.router.add_post("/checkout", checkout)
    return app


def _in_test(proxy: Proxy, name: str, *calls) -> None:
    ctl, via = proxy.control_url, {"http": proxy.url_as("pytest")}
    assert requests.post(f"{ctl}/tests/start", json={"name": T + name}, timeout=10).ok
    for method, url, status in calls:
        assert requests.request(method, url, proxies=via, timeout=20).status_code == status
    assert requests.post(f"{ctl}/tests/end", json={"name": T + name, "outcome": "passed"},
                         timeout=10).ok


class Shop:
    """The two services, running for the module; `record` records their tests once."""

    def __init__(self, where: Path, confdir: Path) -> None:
        self.where, self.confdir = where, confdir
        self.loop = LoopThread()
        self.services = Services(self.loop)
        self.proxies: list[Proxy] = []
        self.orders = self.services.start("orders", _orders())
        self.web = self.services.start("web", _web(self.orders.url, self.proxies))

    def record(self, name: str, *, drift: tuple[str, ...] = (), tests: bool = True) -> Path:
        opts = RecordOptions(
            output=self.where / name, listen=Address("127.0.0.1", free_port()),
            control=Address("127.0.0.1", free_port()), confdir=self.confdir,
            services=(ServiceSpec("orders", "127.0.0.1", self.orders.port),
                      ServiceSpec("web", "127.0.0.1", self.web.port)))
        handle = RecordingProxy(opts)
        self.loop.run(handle.start())
        p = Proxy(opts, handle, self.loop)
        self.proxies.append(p)
        DRIFT.clear()
        DRIFT.update(drift)
        try:
            if tests:
                # The same checkout twice: identical requests whose answers differ.
                _in_test(p, "test_checkout", ("POST", f"{self.web.url}/checkout", 200),
                         ("POST", f"{self.web.url}/checkout", 200))
                _in_test(p, "test_listing", ("GET", f"{self.orders.url}/orders?limit=2", 200),
                         ("GET", f"{self.orders.url}/orders/999999", 404))
        finally:
            DRIFT.clear()
            p.stop()
        return self.where / name

    def close(self) -> None:
        self.services.stop_all()
        self.loop.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory, confdir):
    s = Shop(tmp_path_factory.mktemp("draft"), confdir)
    try:
        s.record("run1.tap")
        s.record("run2.tap")  # the same tests again: new ids, UUIDs, timestamps
        s.record("drift.tap", drift=("type", "missing", "status"))
        yield s
    finally:
        s.close()


def _draft(shop: Shop, kind: str) -> list[str]:
    """Draft run1.tap as `kind` with the CLI; the --contract values for the drafts."""
    if kind == "own":
        r = run_cli("contract", "draft", "run1.tap", "-o", "expected.yaml", cwd=shop.where)
        assert r.returncode == 0, r.stderr
        return ["expected.yaml"]
    if kind == "openapi":
        r = run_cli("contract", "draft", "run1.tap", "--openapi", "-o", "openapi/",
                    cwd=shop.where)
        assert r.returncode == 0, r.stderr
        files = sorted((shop.where / "openapi").iterdir())
        assert [f.name for f in files] == ["orders.yaml", "web.yaml"]
        return [f"{f.stem}=openapi/{f.name}" for f in files]
    r = run_cli("contract", "draft", "run1.tap", "--pact", "-o", "pacts", cwd=shop.where)
    assert r.returncode == 0, r.stderr
    files = sorted((shop.where / "pacts").iterdir())
    assert [f.name for f in files] == ["pytest-orders.json", "pytest-web.json",
                                       "web-orders.json"]
    for f in files:  # Pact v4, consumer and provider as recorded
        doc = json.loads(f.read_text())
        assert doc["metadata"]["pactSpecification"]["version"] == "4.0"
        assert f"{doc['consumer']['name']}-{doc['provider']['name']}.json" == f.name
    return [f"pacts/{f.name}" for f in files]


def _check(shop: Shop, capture: str, specs: list[str]):
    args = [a for s in specs for a in ("--contract", s)]
    return run_cli("check", capture, *args, "--format", "json", cwd=shop.where)


KINDS = ["own", "openapi", "pact"]


@pytest.mark.parametrize("kind", KINDS)
def test_draft_passes_its_run_and_a_rerun_and_flags_drift(shop, kind) -> None:
    specs = _draft(shop, kind)
    for run in ("run1.tap", "run2.tap"):
        r = _check(shop, run, specs)
        out = json.loads(r.stdout)
        assert (r.returncode, out["mismatches"]) == (0, []), (run, r.stderr)
        assert out["checked"] == out["exchanges"] == 8
    r = _check(shop, "drift.tap", specs)
    assert r.returncode == 1, r.stderr
    found: dict[str, set[str]] = {}
    for m in json.loads(r.stdout)["mismatches"]:
        found.setdefault(m["kind"], set()).add(m["where"])
    assert set(found) == {"status", "body-type", "missing-field"}, found
    assert found["body-type"] == {"/qty"}  # web's GET /orders/{id}: qty as a string
    assert found["missing-field"] == {"/0/state", "/1/state"}  # the listing lost it


def test_own_draft_names_templates_and_matchers(shop) -> None:
    import yaml

    _draft(shop, "own")
    doc = yaml.safe_load((shop.where / "expected.yaml").read_text())
    by_id = {i["id"]: i for i in doc["interactions"]}
    # Two callers of one route: an interaction each (web's 200s, the test's own 404).
    assert set(by_id) == {"web POST /checkout", "orders POST /orders",
                          "orders GET /orders/{orderId} from web",
                          "orders GET /orders/{orderId} from pytest", "orders GET /orders"}
    assert by_id["orders GET /orders/{orderId} from pytest"]["response"]["status"] == 404
    made = by_id["orders POST /orders"]["response"]["body"]
    assert made["id"] == {"type": "integer"}
    assert made["ref"]["regex"].startswith("^[0-9a-fA-F]{8}-")
    assert made["state"] == "open"
    assert by_id["web POST /checkout"]["response"]["body"]["orderId"] == {"type": "integer"}


def test_draft_bad_output_and_empty_capture_are_one_line(shop, tmp_path) -> None:
    (tmp_path / "plain").write_text("a file, not a directory")
    r = run_cli("contract", "draft", shop.where / "run1.tap", "-o",
                tmp_path / "plain" / "expected.yaml")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cannot write" in r.stderr, r.stderr
    assert not list(tmp_path.glob("plain*/*")) and len(list(tmp_path.iterdir())) == 1

    empty = shop.record("empty.tap", tests=False)
    kept = tmp_path / "expected.yaml"
    kept.write_text("tapproxy: 1\ninteractions: []\n")
    for extra in ((), ("--openapi",), ("--pact",)):
        r = run_cli("contract", "draft", empty, "-o", kept, *extra)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "no answered HTTP exchanges" in r.stderr
        assert kept.read_text() == "tapproxy: 1\ninteractions: []\n"  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.yaml", "plain"]

    # A recording cut short (the proxy killed mid-write): no draft of part of a run.
    cut = tmp_path / "cut.tap"
    cut.write_bytes((shop.where / "run1.tap").read_bytes()[:-7])
    r = run_cli("contract", "draft", cut, "-o", tmp_path / "cut.yaml")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "cut.tap" in r.stderr and not (tmp_path / "cut.yaml").exists()
    r = run_cli("contract", "draft", shop.where / "run1.tap", "--callee", "nobody",
                "-o", tmp_path / "none.yaml")
    assert r.returncode == 2 and "no calls to nobody (called: orders, web)" in r.stderr
    assert not (tmp_path / "none.yaml").exists()


def test_openapi_to_one_file_needs_one_service(shop, tmp_path) -> None:
    r = run_cli("contract", "draft", shop.where / "run1.tap", "--openapi", "-o",
                tmp_path / "api.yaml")
    assert r.returncode == 2 and r.stderr == \
        "tapproxy: error: --openapi: 2 services called: give -o DIR/ or --callee NAME\n"
    assert not (tmp_path / "api.yaml").exists()
    r = run_cli("contract", "draft", shop.where / "run1.tap", shop.where / "run2.tap",
                "--openapi", "--callee", "orders", "-o", tmp_path / "api.yaml")
    assert r.returncode == 0, r.stderr
    assert "from 16 exchanges" in r.stdout
    check = run_cli("check", shop.where / "run2.tap", "--contract",
                    f"orders={tmp_path / 'api.yaml'}", "--format", "json")
    assert check.returncode == 0, check.stdout


def _pacts_verifier(shop: Shop, pact_file: Path) -> dict[str, bool]:
    """Pact's own verifier (the Rust engine) on the real orders service: per interaction,
    whether it passed."""
    pytest.importorskip("pact", reason="pact-python is in the test extra")
    import contextlib

    from pact import Verifier

    verifier = Verifier("orders", host="127.0.0.1").add_transport(url=shop.orders.url)
    verifier.add_source(pact_file)
    with contextlib.suppress(RuntimeError):  # a failed verification: read its results
        verifier.verify()
    return {r["description"]: r["result"] == "OK"
            for r in verifier.results["interactionResults"]}


def test_drafted_pacts_pass_pacts_own_verifier_and_it_sees_the_drift(shop) -> None:
    _draft(shop, "pact")
    for name in ("web-orders.json", "pytest-orders.json"):
        verdicts = _pacts_verifier(shop, shop.where / "pacts" / name)
        assert verdicts and all(verdicts.values()), (name, verdicts)
    DRIFT.update({"type", "missing", "status"})
    try:
        verdicts = _pacts_verifier(shop, shop.where / "pacts" / "web-orders.json")
        listing = _pacts_verifier(shop, shop.where / "pacts" / "pytest-orders.json")
    finally:
        DRIFT.clear()
    assert verdicts == {"POST /orders → 201": False, "GET /orders/{orderId} → 200": False}
    assert listing == {"GET /orders → 200": False, "GET /orders/{orderId} → 404": True}
