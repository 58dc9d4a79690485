"""Naming callee addresses after the fact: `--service NAME=HOST[:PORT]` on a capture.

The same map `record --service` applies while recording, applied by the readers (`why`,
`stats`, `spans`, `show`) to a capture whose callees were recorded as addresses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from tapproxy.capture.model import Exchange, Party, Record

__all__ = ["CalleeNames"]

# Names a reader leaves alone: the listener or the service tapproxy started said so.
_SETTLED = ("reverse", "service")


class CalleeNames:
    """A record transform naming callees by address; `then` runs after it (routes, whose
    `SERVICE:` prefix needs the name)."""

    def __init__(self, services: Iterable[tuple[str, str, int | None]],
                 then: Callable[[Record], Record] | None = None) -> None:
        self._exact: dict[tuple[str, int], str] = {}
        self._any_port: dict[str, str] = {}
        for name, host, port in services:
            host = host.strip("[]").lower()
            if port is None:
                self._any_port[host] = name
            else:
                self._exact[(host, port)] = name
        self._then = then

    def __bool__(self) -> bool:
        return bool(self._exact or self._any_port or self._then)

    def __call__(self, record: Record) -> Record:
        if isinstance(record, Exchange) and record.callee.source not in _SETTLED:
            q = record.request
            host = q.host.strip("[]").lower()
            name = self._exact.get((host, q.port)) or self._any_port.get(host)
            if name is not None and name != record.callee.name:
                address = f"[{host}]:{q.port}" if ":" in host else f"{host}:{q.port}"
                record = dataclasses.replace(
                    record, callee=Party(name, "service-map", record.callee.address or address))
        return self._then(record) if self._then else record
