"""Replay's configuration: declared once, parsed from the command line, passed as values."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tapproxy.errors import ReplayError, UsageError
from tapproxy.supervisor.options import Address, check_name, parse_address

__all__ = ["FIRST_PORT", "ReplayOptions", "ServiceListener", "bind_listeners",
           "parse_service_listener", "parse_upstream", "plan_listeners"]

FIRST_PORT = 9001  # the first of the consecutive ports callees get by default


@dataclass(frozen=True, slots=True)
class ServiceListener:
    """Where one recorded service is served: `name` on `listen`."""

    name: str
    listen: Address


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    capture: Path
    criteria: tuple[str, ...]
    services: tuple[ServiceListener, ...] = ()
    listen: Address | None = None  # the forward proxy, when asked for
    control: Address | None = None
    confdir: Path = field(default_factory=lambda: Path("~/.mitmproxy").expanduser())
    latency: bool = False  # wait as long as the recorded service took
    strict: bool = False
    record_missing: tuple[tuple[str, str], ...] = ()  # (service or "*", upstream URL)
    missing_output: Path | None = None
    missing_later: bool = False  # upstreams for misses are added while running (pytest)


def parse_service_listener(spec: str) -> tuple[str, Address]:
    """`NAME@[HOST:]PORT`, e.g. `orders@9001` (the last `@` separates them)."""
    name, sep, where = spec.rpartition("@")
    if not sep or not name.strip() or not where.strip():
        raise UsageError(f"bad --service {spec!r}: expected NAME@[HOST:]PORT, "
                         "e.g. orders@9001")
    return check_name(name.strip(), "--service"), parse_address(where, "--service address")


def parse_upstream(spec: str) -> tuple[str, str]:
    """`[NAME=]URL`: where the misses for NAME (no NAME: any service) are sent."""
    name, sep, url = spec.partition("=")
    if not sep or "://" in name:
        name, url = "*", spec
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad --record-missing {spec!r}: expected [NAME=]URL, "
                         "e.g. orders=http://127.0.0.1:5001")
    return name.strip(), url.strip().rstrip("/")


def plan_listeners(callees: list[str], given: Iterable[tuple[str, Address]],
                   first_port: int, host: str = "127.0.0.1") -> tuple[ServiceListener, ...]:
    """The listeners to open: those given (ReplayError for a service the capture never
    called), else one per recorded callee on consecutive ports from `first_port`."""
    given = list(given)
    for name, _ in given:
        if name not in callees:
            raise ReplayError(f"--service {name}: no exchange to {name} in the capture "
                              f"(recorded: {', '.join(callees)})")
    if given:
        return tuple(ServiceListener(n, a) for n, a in given)
    # Port 0: a free port each (0 + i would name ports below 1024).
    return tuple(ServiceListener(n, Address(host, first_port and first_port + i))
                 for i, n in enumerate(callees))


def bind_listeners(addresses: Iterable[tuple[str, Address]]) -> list[socket.socket]:
    """A listening socket for each (what, address), all or none (ReplayError naming the
    first that cannot be had): nothing starts unless every port is free."""
    bound: list[socket.socket] = []
    try:
        for what, a in addresses:
            family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            bound.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((a.host, a.port))
            except OSError as e:
                reason = "address already in use" if e.errno == 98 else e.strerror
                raise ReplayError(f"{what}: cannot listen on {a}: {reason}") from None
            s.listen(128)
            s.setblocking(False)
    except BaseException:
        for s in bound:
            s.close()
        raise
    return bound
