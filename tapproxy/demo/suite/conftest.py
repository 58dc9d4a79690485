"""The shop's four services, each started and fronted by tapproxy on a port of its own:
no service and no client here is told about the proxy."""

import shutil
import sys
from pathlib import Path

import pytest

from tapproxy.demo import services
from tapproxy.supervisor.fronting import free_loopback_port

SERVICES = Path(services.__file__).parent


def _python(module: str) -> list[str]:
    return [sys.executable, "-m", f"tapproxy.demo.services.{module}", "{port}"]


@pytest.fixture(scope="session")
def shop(tapproxy_service):
    """The shop's URL, with catalog (Node), inventory (gRPC) and payments behind it."""
    catalog = tapproxy_service("catalog", [shutil.which("node") or "node",
                                           str(SERVICES / "catalog.js"), "{port}"],
                               port=free_loopback_port())
    inventory = tapproxy_service("inventory", _python("inventory"), port=free_loopback_port())
    payments = tapproxy_service("payments", _python("payments"), port=free_loopback_port())
    shop = tapproxy_service("shop", app="tapproxy.demo.services.shop:make_app",
                            port=free_loopback_port(),
                            env={"CATALOG_URL": catalog.url,
                                 "INVENTORY_ADDRESS": f"127.0.0.1:{inventory.port}",
                                 "PAYMENTS_URL": payments.url})
    return shop.url
