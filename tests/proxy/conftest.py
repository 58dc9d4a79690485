"""Fixtures shared by the process-lookup tests (test_processes, test_caller_lookups)."""

from __future__ import annotations

import pytest

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port
from tests.proxy.test_clients import echo_app


@pytest.fixture
def echo(services):
    return services.start("echo", echo_app())


@pytest.fixture
def fronted(start_proxy, echo):
    """A proxy with a reverse listener in front of `echo`: (proxy, its URL)."""
    def start(**overrides):
        port = free_port()
        proxy = start_proxy(reverse=(ReverseSpec("echo", echo.url,
                                                 Address("127.0.0.1", port)),), **overrides)
        return proxy, f"http://127.0.0.1:{port}"
    return start
