import requests


def _proxies(tapproxy):
    return {"http": tapproxy.env["HTTP_PROXY"]}


def test_checkout(shop, tapproxy):
    gateway, _ = shop
    r = requests.post(f"{gateway.url}/checkout", json={"sku": "B-2"}, timeout=10,
                      proxies=_proxies(tapproxy))
    assert r.status_code == 200


def test_checkout_drifted(shop, tapproxy):
    gateway, _ = shop
    r = requests.post(f"{gateway.url}/checkout", json={"sku": "A-1"}, timeout=10,
                      proxies=_proxies(tapproxy))
    assert r.status_code == 200


def test_stock_lookup(shop, tapproxy):
    _, inventory = shop
    r = requests.get(f"{inventory.url}/stock/A-1", timeout=10, proxies=_proxies(tapproxy))
    assert r.status_code == 200  # checks the status only: the drift passes unnoticed
