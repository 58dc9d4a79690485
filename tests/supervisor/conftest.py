"""The proxy fixtures the supervisor's tests share with the proxy's."""

from tests.proxy.conftest import echo, fronted  # noqa: F401
