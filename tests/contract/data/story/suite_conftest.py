import sys

import pytest


@pytest.fixture(scope="session")
def shop(tapproxy_service):
    def start(name, **env):
        return tapproxy_service(name, [sys.executable, "stock_services.py", name, "{port}"],
                                env=env)

    inventory = start("inventory")
    return start("gateway", INVENTORY_URL=inventory.url), inventory
