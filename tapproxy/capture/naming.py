"""Naming after the fact: `--service NAME=HOST[:PORT]`, and one name per process.

`CalleeNames` is the map `record --service` applies while recording, applied by the
readers (`why`, `stats`, `spans`, `show`) to a capture whose callees were recorded as
addresses. `GivenNames` gives a process the name it was given (its proxy user, a
service tapproxy started) in the records written before that name was known (a service
called before it made its first call), by its PID and command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from tapproxy.capture.model import Exchange, Party, Record

__all__ = ["CalleeNames", "GivenNames"]

_GIVEN = ("proxy-auth", "proxy-user", "service")  # names a process was given, not guessed

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


class GivenNames:
    """A record transform: a party named by its executable (`process`) gets the one name
    the same process (PID and command line) was given elsewhere; `then` runs after it."""

    def __init__(self, parties: Iterable[tuple[Party, Party]],
                 then: Callable[[Record], Record] | None = None) -> None:
        """`parties`: (caller, callee) of the exchanges, or of those where a party has a
        pid (CaptureReader.process_parties()): only those count."""
        given: dict[tuple[int, str], set[str]] = {}
        for pair in parties:
            for p in pair:
                if p.pid is not None and p.source in _GIVEN:
                    given.setdefault((p.pid, p.command or ""), set()).add(p.name)
        # A process given two names (a test client playing two callers) keeps its own.
        self._names = {k: next(iter(v)) for k, v in given.items() if len(v) == 1}
        self._then = then

    def __bool__(self) -> bool:
        return bool(self._names or self._then)

    def party(self, p: Party) -> Party:
        name = self._names.get((p.pid, p.command or "")) if p.source == "process" else None
        return p if name is None else dataclasses.replace(p, name=name, source="proxy-user")

    def __call__(self, record: Record) -> Record:
        if isinstance(record, Exchange) and self._names:
            caller, callee = self.party(record.caller), self.party(record.callee)
            if caller is not record.caller or callee is not record.callee:
                record = dataclasses.replace(record, caller=caller, callee=callee)
        return self._then(record) if self._then else record
