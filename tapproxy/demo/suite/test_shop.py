"""Three tests that pass, one broken by a payment that fails two services down, and one
by a catalog whose `price` turned into a string (catalog.yaml says it is a number)."""

import requests

CARD = "4242-4242-4242-4242"
DECLINED_CARD = "4000-0000-0000-0119"


def order(shop, sku, qty, card=CARD):
    return requests.post(f"{shop}/orders", json={"sku": sku, "qty": qty, "card": card},
                         timeout=10)


def test_browse_catalog(shop):
    r = requests.get(f"{shop}/products/tea", timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "Green tea"


def test_place_order(shop):
    r = order(shop, "tea", 2)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == 9.0


def test_out_of_stock(shop):
    r = order(shop, "cups", 1)
    assert r.status_code == 409, r.text


def test_declined_card(shop):
    r = order(shop, "tea", 1, card=DECLINED_CARD)
    assert r.status_code == 201, r.text


def test_order_a_mug(shop):
    r = order(shop, "mug", 1)
    assert r.status_code == 201, r.text
