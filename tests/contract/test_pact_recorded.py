"""Pact files written by pact-python itself (v2, v3, v4) checked against real aiohttp
services recorded through the real proxy: a clean run, and a drifted one that breaks
each response mismatch kind, calls outside the pact and leaves an interaction out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.contract.check import check_records
from tapproxy.contract.load import load_contract
from tapproxy.supervisor.options import ServiceSpec

pact_python = pytest.importorskip("pact", reason="pact-python is in the test extra")

SPECS = ("V2", "V3", "V4")


def write_pacts(tmp_path: Path, provider: str = "orders") -> dict[str, Path]:
    """The consumer's expectations, written by pact-python's own engine per spec."""
    from pact import Pact, match

    files = {}
    for spec in SPECS:
        pact = Pact("web", provider).with_specification(spec)
        (pact.upon_receiving("an order")
            .given("order 1 exists")
            .with_request("GET", "/orders/1")
            .with_query_parameter("view", "full")
            .with_header("Accept", "application/json")
            .will_respond_with(200)
            .with_header("X-Version", "1")
            .with_body({"id": match.int(1), "qty": match.int(2),
                        "sku": match.regex("AB-12", regex=r"[A-Z]{2}-\d+"),
                        "status": "open", "tags": ["new"],
                        "items": match.each_like({"name": match.str("bolt")}, min=1)},
                       content_type="application/json"))
        (pact.upon_receiving("a new order")
            .with_request("POST", "/orders")
            .with_body({"sku": "AB-12", "qty": 2}, content_type="application/json")
            .will_respond_with(201)
            .with_body({"id": match.int(7)}, content_type="application/json"))
        (pact.upon_receiving("a missing order")
            .given("no order 9")
            .with_request("GET", "/orders/9")
            .will_respond_with(404))
        with pact.serve() as srv:  # pact-python only writes what its mock server saw
            s = requests.Session()
            s.trust_env = False
            s.get(f"{srv.url}/orders/1?view=full", headers={"Accept": "application/json"},
                  timeout=10)
            s.post(f"{srv.url}/orders", json={"sku": "AB-12", "qty": 2}, timeout=10)
            s.get(f"{srv.url}/orders/9", timeout=10)
        out = tmp_path / spec
        pact.write_file(out, overwrite=True)
        (files[spec],) = out.glob("*.json")
    return files


def orders_app(drift: bool) -> web.Application:
    async def order(request: web.Request) -> web.Response:
        if request.match_info["id"] != "1":
            return web.json_response({"error": "no such order"}, status=404)
        body = {"id": 1, "qty": 2, "sku": "AB-12", "status": "open", "tags": ["new"],
                "items": [{"name": "bolt"}, {"name": "nut"}], "note": "extra keys are fine"}
        if drift:
            body.update(qty="2", sku="ab_12", tags=["new", "rush"])
            del body["status"]
        return web.json_response(body, headers={"X-Version": "2" if drift else "1"})

    async def create(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"id": 7}, status=200 if drift else 201)

    app = web.Application()
    app.router.add_get("/orders/{id}", order)
    app.router.add_post("/orders", create)
    return app


def record(start_proxy, services, drift: bool) -> list:
    svc = services.start("orders", orders_app(drift))
    proxy = start_proxy(services=(ServiceSpec("orders", "127.0.0.1", svc.port),))
    via = {"http": proxy.url_as("web")}
    get = lambda path, **kw: requests.get(f"{svc.url}{path}", proxies=via,  # noqa: E731
                                          timeout=10, **kw)
    get("/orders/1?view=full", headers={"Accept": "application/json"})
    requests.post(f"{svc.url}/orders", json={"sku": "AB-12", "qty": 2}, proxies=via,
                  timeout=10)
    if drift:
        get("/orders/1?view=brief", headers={"Accept": "application/json"})  # not in the pact
    else:
        get("/orders/9")
    records = proxy.records()
    proxy.stop()
    return records


@pytest.fixture(scope="module")
def pacts(tmp_path_factory) -> dict[str, Path]:
    return write_pacts(tmp_path_factory.mktemp("pacts"))


def test_pact_python_writes_each_spec(pacts):
    versions = {spec: json.loads(p.read_text())["metadata"]["pactSpecification"]["version"]
                for spec, p in pacts.items()}
    assert versions == {"V2": "2.0.0", "V3": "3.0.0", "V4": "4.0"}


@pytest.mark.parametrize("spec", SPECS)
def test_clean_run_passes_every_interaction(spec, pacts, start_proxy, services):
    records = record(start_proxy, services, drift=False)
    result = check_records(records, [load_contract(pacts[spec])])
    assert [m.message for m in result.mismatches] == []
    assert result.checked == 3
    assert sorted(item for _, item in result.covered) == [
        "a missing order (given no order 9)", "a new order", "an order (given order 1 exists)"]


def _line(m) -> str:
    return m.contract.file.read_text().splitlines()[m.contract.line - 1]


@pytest.mark.parametrize("spec", SPECS)
def test_drifted_run_names_each_mismatch(spec, pacts, start_proxy, services):
    records = record(start_proxy, services, drift=True)
    result = check_records(records, [load_contract(pacts[spec])])
    found = {(m.kind, m.where) for m in result.mismatches}
    assert found == {
        ("body-type", "/qty"),  # integer matcher, got a string
        ("body-value", "/sku"),  # regex matcher
        ("missing-field", "/status"),
        ("extra-field", "/tags/1"),  # a literal array grew
        ("header", "header X-Version"),
        ("status", "status"),
        ("unexpected-interaction", "query view"),
        ("missing-interaction", ""),
    }
    by_where = {m.where: m for m in result.mismatches}
    qty = by_where["/qty"]
    assert (qty.expected, qty.actual, qty.side, qty.item) == (
        "2", '"2"', "response", "an order (given order 1 exists)")
    assert (qty.caller, qty.callee, qty.test) == ("web", "orders", None)
    assert '"qty": "2"' in qty.excerpt
    # Each mismatch points at its place in the pact file: the matcher, or the value.
    assert qty.contract.file == pacts[spec]
    assert "qty" in _line(qty)
    assert "sku" in _line(by_where["/sku"])
    assert "X-Version" in _line(by_where["header X-Version"])
    assert "201" in _line(by_where["status"])
    missing = next(m for m in result.mismatches if m.kind == "missing-interaction")
    assert missing.item == "a missing order (given no order 9)"
    assert '"description": "a missing order"' in _line(missing)
    unexpected = by_where["query view"]
    assert "GET /orders/1?view=brief" in unexpected.message
    assert (unexpected.expected, unexpected.actual) == ("full", "brief")
    assert "query" in _line(unexpected) or "view" in _line(unexpected)


def test_service_binding_overrides_the_provider(tmp_path, start_proxy, services):
    pacts = write_pacts(tmp_path, provider="orders-api")
    records = record(start_proxy, services, drift=False)
    unbound = check_records(records, [load_contract(pacts["V4"])])
    assert unbound.checked == 0  # no callee is called orders-api
    bound = check_records(records, [load_contract(f"orders={pacts['V4']}")])
    assert bound.checked == 3 and bound.mismatches == []

