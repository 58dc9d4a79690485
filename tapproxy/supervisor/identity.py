"""Naming the two sides of an exchange, and saying how each name was found."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from tapproxy.capture.model import Party
from tapproxy.supervisor.options import ReverseSpec, ServiceSpec
from tapproxy.supervisor.own_addresses import OwnAddresses

__all__ = ["CalleeNamer", "OwnListeners", "address_of", "caller_from_proxy_auth", "peer_party"]


def caller_from_proxy_auth(value: str | None) -> str | None:
    """The user part of `Proxy-Authorization: Basic …` (from `http://NAME@proxy`), or None."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_of(peer: tuple | None) -> str | None:
    """`host:port` (`[v6]:port`) of a socket address tuple, or None."""
    return _fmt(peer[0], peer[1]) if peer else None


def peer_party(peer: tuple | None) -> Party:
    """A caller known only by its address: the name is the address, so it reads as unknown."""
    if not peer:
        return Party("unknown", "peer")
    return Party(peer[0], "peer", address_of(peer))


class CalleeNamer:
    """Names a callee: the reverse listener's service, the --service map, else the host."""

    def __init__(self, services: tuple[ServiceSpec, ...]) -> None:
        self._exact = {(s.host.lower(), s.port): s.name for s in services if s.port is not None}
        self._any_port = {s.host.lower(): s.name for s in services if s.port is None}
        self._known: dict[tuple[str, int, str | None], Party] = {}

    def add(self, service: ServiceSpec) -> None:
        """Name `service`'s address from now on (a service a test harness started)."""
        if service.port is None:
            self._any_port[service.host.lower()] = service.name
        else:
            self._exact[(service.host.lower(), service.port)] = service.name
        self._known.clear()

    def name(self, host: str, port: int, reverse_name: str | None = None) -> Party:
        key = (host, port, reverse_name)
        party = self._known.get(key)
        if party is None:  # the same few callees again and again: name each once
            party = self._name(host, port, reverse_name)
            if len(self._known) < 10_000:
                self._known[key] = party
        return party

    def _name(self, host: str, port: int, reverse_name: str | None) -> Party:
        address = _fmt(host, port)
        if reverse_name is not None:
            return Party(reverse_name, "reverse", address)
        key = host.lower()
        name = self._exact.get((key, port)) or self._any_port.get(key)
        if name is not None:
            return Party(name, "service-map", address)
        return Party(host, "host", address)


class OwnListeners:
    """tapproxy's own reverse listeners, seen as the target of a forwarded request.

    mitmproxy refuses to connect to its own listeners (502 "Request destination
    unknown"): a client that honours HTTP_PROXY and calls a fronted service would fail.
    Such a request goes straight to that listener's upstream instead, recorded once. A
    target names a listener as OwnAddresses decides for the control API's refusal.
    """

    def __init__(self, reverse: tuple[ReverseSpec, ...]) -> None:
        self._addresses = OwnAddresses()
        self._upstreams: dict[str, tuple[str, str, str, int]] = {}
        for r in reverse:
            self.add(r)

    def add(self, r: ReverseSpec) -> None:
        key = str(len(self._upstreams))
        u = urlsplit(r.upstream)
        self._addresses.add(key, r.listen)
        self._upstreams[key] = (r.name, u.scheme, u.hostname or "", u.port or 0)

    def __bool__(self) -> bool:
        return bool(self._upstreams)

    def upstream(self, host: str, port: int) -> tuple[str, str, str, int] | None:
        """(service name, scheme, host, port) if `host:port` is one of our reverse listeners."""
        found = self._addresses.named_by(host, port)
        return self._upstreams[found[0]] if found is not None else None
