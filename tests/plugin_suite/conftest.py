import sys

import pytest


@pytest.fixture(scope="session")
def shop(tapproxy_service):
    def start(name, **env):
        return tapproxy_service(name, [sys.executable, "shop_services.py", name, "{port}"],
                                env=env)

    payments = start("payments")
    orders = start("orders", PAYMENTS_URL=payments.url)
    return start("gateway", ORDERS_URL=orders.url)
