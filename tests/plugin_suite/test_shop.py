import requests


def checkout(shop, tapproxy, card):
    return requests.post(f"{shop.url}/checkout", json={"card": card}, timeout=10,
                         proxies={"http": tapproxy.env["HTTP_PROXY"]})


def test_checkout(shop, tapproxy):
    assert checkout(shop, tapproxy, "good").status_code == 201
    tapproxy.assert_called(caller="orders", callee="payments", path="/charges", status=201)
    tapproxy.assert_no_failures()


def test_declined_card(shop, tapproxy):
    assert checkout(shop, tapproxy, "bad").status_code == 201


def test_health_from_an_app_factory(tapproxy_service, tapproxy):
    svc = tapproxy_service("health", app="shop_services:health_app")
    r = requests.get(f"{svc.url}/health", proxies={"http": tapproxy.env["HTTP_PROXY"]},
                     timeout=10)
    assert r.json() == {"ok": True}
    assert [(x.caller.name, x.callee.name) for x in tapproxy.exchanges()] == [
        ("tests", "health")]


def test_sends_nothing():
    pass
