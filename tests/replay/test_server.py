"""Replay listeners answer real clients with what the real services answered."""

from __future__ import annotations

import json
import subprocess

import httpx
import requests


def _shop_script(urls: dict[str, str]) -> None:
    orders, stock = urls["orders"], urls["stock"]
    with httpx.Client() as c:
        assert c.get(f"{orders}/orders/1").status_code == 404
        assert c.post(f"{orders}/orders", json={"sku": "tea", "qty": 2}).status_code == 201
        assert c.get(f"{orders}/orders/1").status_code == 200
        assert c.get(f"{orders}/orders").json()["data"] == [1]
        assert c.post(f"{orders}/orders", json={"sku": "cup", "qty": 1}).status_code == 201
        assert c.get(f"{orders}/orders").json()["data"] == [1, 2]
        assert c.get(f"{stock}/stock/tea?n=3").json()["qty"] == 3


def test_stateful_sequence_replays_in_recorded_order(record_shop, start_replay):
    capture = record_shop(_shop_script)
    r = start_replay(capture)
    orders = r.url("orders")
    with httpx.Client() as c:
        assert c.get(f"{orders}/orders/1").status_code == 404  # before the create
        created = c.post(f"{orders}/orders", json={"qty": 2, "sku": "tea"})  # keys reordered
        assert created.status_code == 201
        assert created.json()["data"] == {"id": 1, "sku": "tea", "qty": 2}
        got = c.get(f"{orders}/orders/1")
        assert got.status_code == 200 and got.json()["data"]["sku"] == "tea"
        assert got.headers["x-served-by"] == "orders"
        # Identical requests: the recorded answers in order, then the last one again.
        assert c.get(f"{orders}/orders").json()["data"] == [1]
        assert c.post(f"{orders}/orders", json={"sku": "cup", "qty": 1}).status_code == 201
        assert c.get(f"{orders}/orders").json()["data"] == [1, 2]
        assert c.get(f"{orders}/orders").json()["data"] == [1, 2]
    assert requests.get(f"{r.url('stock')}/stock/tea?n=3").json() == {"sku": "tea", "qty": 3}
    out = subprocess.run(["curl", "-sS", "--noproxy", "*", f"{orders}/orders/1"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["data"]["id"] == 1
    stats = r.stop()
    assert (stats.matched, stats.unmatched, stats.unused) == (9, 0, 0)
    assert stats.accuracy == 100.0


def test_a_miss_gets_a_502_naming_the_nearest_recorded_requests(record_shop, start_replay):
    capture = record_shop(_shop_script)
    r = start_replay(capture)
    resp = httpx.post(f"{r.url('orders')}/orders", json={"sku": "tea", "qty": "2"})
    assert resp.status_code == 502
    assert resp.headers["x-tapproxy-replay"] == "miss"
    lines = resp.text.splitlines()
    assert lines[0] == "no recorded answer for POST /orders to orders"
    assert lines[1] == "nearest recorded requests:"
    first = lines[2]
    assert first.lstrip().startswith("#2") and "POST /orders" in first
    assert first.endswith("method ✓ path ✓ query ✓ body ✗")
    assert 'body /qty: recorded 2, got "2"' in resp.text
    assert all(len(line) <= 80 for line in lines)
    assert r.log == lines  # the replay log says the same
    stats = r.stop()
    assert (stats.matched, stats.unmatched) == (0, 1)
    assert stats.unused == 7 and stats.accuracy == 0.0


def test_match_criteria_narrow_what_counts(record_shop, start_replay):
    capture = record_shop(_shop_script)
    r = start_replay(capture, match=["method,path"])
    resp = httpx.post(f"{r.url('orders')}/orders", json={"anything": True})
    assert resp.status_code == 201 and resp.json()["data"]["sku"] == "tea"
    resp = httpx.get(f"{r.url('stock')}/stock/tea?n=99")
    assert resp.json()["qty"] == 3


def test_test_header_scopes_matching_to_that_tests_exchanges(record_shop, start_replay):
    def script(urls):
        for test in ("test_a", "test_b"):
            httpx.post(f"{urls['orders']}/orders", json={"sku": "x", "qty": 9},
                       headers={"x-tapproxy-test": test})
            httpx.get(f"{urls['orders']}/orders", headers={"x-tapproxy-test": test})

    capture = record_shop(script)
    r = start_replay(capture)
    orders = r.url("orders")
    # test_b's list is [1, 2]; asked first, without its scope the order would give [1].
    got = httpx.get(f"{orders}/orders", headers={"x-tapproxy-test": "test_b"})
    assert got.json()["data"] == [1, 2]
    got = httpx.get(f"{orders}/orders", headers={"x-tapproxy-test": "test_a"})
    assert got.json()["data"] == [1]
    # The control API's open test does the same for requests that name none.
    r.background.call(r.replay.matcher.start_test, "test_b")
    assert httpx.post(f"{orders}/orders", json={"sku": "x", "qty": 9}).json()["data"]["id"] == 2


def test_record_missing_sends_misses_live_and_appends_them_to_a_new_capture(
        record_shop, start_replay, services, tmp_path):
    from tapproxy.capture import open_capture
    from tests.replay.conftest import orders_app

    capture = record_shop(_shop_script)
    live = services.start("orders-live", orders_app())
    missing = tmp_path / "missing.tap"
    r = start_replay(capture, record_missing=(("orders", live.url),), missing_output=missing)
    orders = r.url("orders")
    assert httpx.get(f"{orders}/orders/1").status_code == 404  # recorded
    got = httpx.post(f"{orders}/orders", json={"sku": "new"}, headers={"x-tapproxy-test": "t"})
    assert got.status_code == 201 and got.json()["data"] == {"id": 1, "sku": "new"}  # live
    assert httpx.get(f"{r.url('stock')}/stock/none").status_code == 502  # no upstream
    stats = r.stop()
    assert (stats.matched, stats.unmatched) == (1, 2)
    with open_capture(missing) as reader:
        [x] = list(reader.exchanges())
    assert (x.callee.name, x.request.method, x.request.path, x.status) == (
        "orders", "POST", "/orders", 201)
    assert x.request.body == b'{"sku":"new"}' and x.test == "t"
    assert b'"sku": "new"' in x.response.body  # aiohttp's json_response
    with open_capture(capture) as reader:  # the replayed capture is left as it was
        assert len(list(reader.exchanges())) == 7


def test_control_api_scopes_requests_to_the_test_it_opened(record_shop, start_replay):
    from tapproxy.supervisor.options import Address

    def script(urls):
        for test in ("test_a", "test_b"):
            httpx.post(f"{urls['orders']}/orders", json={"sku": "x"},
                       headers={"x-tapproxy-test": test})
            httpx.get(f"{urls['orders']}/orders", headers={"x-tapproxy-test": test})

    capture = record_shop(script)
    r = start_replay(capture, control=Address("127.0.0.1", 0), latency=True)
    control = f"http://{r.replay.control_address}"
    orders = r.url("orders")
    assert httpx.post(f"{control}/tests/start", json={"name": "test_b"}).status_code == 201
    assert httpx.get(f"{orders}/orders").json()["data"] == [1, 2]
    assert httpx.get(f"{orders}/orders/9").status_code == 502
    ended = httpx.post(f"{control}/tests/end", json={"name": "test_b"}).json()
    [miss] = ended["misses"]
    assert miss[0] == "no recorded answer for GET /orders/9 to orders"
    assert httpx.get(f"{control}/stats").json() == {
        "matched": 1, "unmatched": 1, "recorded": 4, "unused": 3, "accuracy": 50.0}
    assert httpx.post(f"{control}/tests/start", json={}).status_code == 400


def test_noise_in_a_request_does_not_count_and_ignore_leaves_out_more(record_shop,
                                                                      start_replay):
    import datetime as dt
    import uuid

    def stamped(extra=None):
        return {"sku": "tea", "qty": 2, "request_id": str(uuid.uuid4()),
                "at": dt.datetime.now(dt.UTC).isoformat(), **(extra or {})}

    def script(urls):
        httpx.post(f"{urls['orders']}/orders", json=stamped({"note": "a"}))
        httpx.get(f"{urls['stock']}/stock/tea", params={"t": "1733590000"})

    capture = record_shop(script)
    r = start_replay(capture)
    # A fresh id, time and epoch: noise by their kind, so still the recorded request.
    assert httpx.post(f"{r.url('orders')}/orders",
                      json=stamped({"note": "a"})).status_code == 201
    assert httpx.get(f"{r.url('stock')}/stock/tea",
                     params={"t": "1733599999"}).status_code == 200
    assert httpx.post(f"{r.url('orders')}/orders",
                      json=stamped({"note": "b"})).status_code == 502
    r.stop()
    r = start_replay(capture, ignore=["/note"])
    assert httpx.post(f"{r.url('orders')}/orders",
                      json=stamped({"note": "b"})).status_code == 201


def test_h2c_prior_knowledge_and_http1_on_the_same_listener(record_shop, start_replay):
    capture = record_shop(_shop_script)
    r = start_replay(capture)
    url = f"{r.url('stock')}/stock/tea?n=3"
    out = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge",
                          "-w", "\\n%{http_version} %{response_code}", url],
                         capture_output=True, text=True, check=True)
    body, _, status = out.stdout.rpartition("\n")
    assert status == "2 200" and json.loads(body) == {"sku": "tea", "qty": 3}
    assert httpx.get(url).http_version == "HTTP/1.1"


def test_the_answer_has_the_recorded_headers_once_each(record_shop, start_replay):
    capture = record_shop(_shop_script)
    r = start_replay(capture)
    resp = httpx.get(f"{r.url('orders')}/orders/1")
    assert resp.headers.get_list("content-type") == ["application/json; charset=utf-8"]
    assert resp.headers.get_list("x-served-by") == ["orders"]
    assert resp.headers.get_list("server") == [resp.headers["server"]]
