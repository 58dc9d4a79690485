"""The proxy's own addresses (control API, forward listener, OTLP receiver): never a target.

Forwarding a request to them would let anything that can use the proxy drive the control
API (or loop the proxy into itself). The request's host is compared as written, without a
DNS lookup on the event loop: an IP literal, `localhost` or this machine's host name. A
DNS name that merely resolves to loopback is not recognised here; mitmproxy's own
self-connect check still stops loops to its listeners.
"""

from __future__ import annotations

import ipaddress
import socket

from tapproxy.proxy.options import Address

__all__ = ["OwnAddresses"]

_WILDCARD = {"", "0.0.0.0", "::"}


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class OwnAddresses:
    """Which of the proxy's own listeners a request target names, if any."""

    def __init__(self) -> None:
        self._listeners: list[tuple[str, Address]] = []
        self._hostname = socket.gethostname().lower()

    def add(self, what: str, address: Address) -> None:
        self._listeners.append((what, address))

    def _local(self, host: str) -> bool:
        """`host` names this machine: loopback, unspecified, `localhost`, its host name."""
        if host in ("localhost", self._hostname) or host.endswith(".localhost"):
            return True
        ip = _ip(host)
        return ip is not None and (ip.is_loopback or ip.is_unspecified)

    def named_by(self, host: str, port: int) -> tuple[str, Address] | None:
        """(what, address) of the listener that `host:port` reaches, or None."""
        h = host.strip("[]").lower()
        for what, a in self._listeners:
            if a.port != port:
                continue
            lh = a.host.strip("[]").lower()
            if h == lh or (self._local(h) and (lh in _WILDCARD or self._local(lh))):
                return what, a
        return None
