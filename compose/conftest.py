"""The demo's tests (tapproxy/demo/suite/test_shop.py) against the shop in compose: the
services run in containers of their own, so the `shop` fixture is only its URL."""

import os

import pytest


@pytest.fixture(scope="session")
def shop():
    return os.environ["SHOP_URL"]
