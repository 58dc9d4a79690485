"""Choosing exchanges (and tunnels) from a capture: by test, by service, failures only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

from tapproxy.capture.model import Exchange, Record, Tunnel

__all__ = ["numbered_exchanges", "numbered_rows", "select"]


def numbered_exchanges(records: Iterable[Record]) -> Iterator[tuple[int, Exchange]]:
    """(N, exchange) with N counting exchanges from 1 in file order: stable under filters."""
    n = 0
    for r in records:
        if isinstance(r, Exchange):
            n += 1
            yield n, r


def numbered_rows(records: Iterable[Record]) -> Iterator[tuple[int | str, Exchange | Tunnel]]:
    """Exchanges numbered as numbered_exchanges does, and tunnels as `t1`, `t2`, … between
    them in file order: a row kind of its own, so exchange numbers do not change."""
    n = t = 0
    for r in records:
        if isinstance(r, Exchange):
            n += 1
            yield n, r
        elif isinstance(r, Tunnel):
            t += 1
            yield f"t{t}", r


def _matches(pattern: str, value: str | None) -> bool:
    return value is not None and (value == pattern or fnmatchcase(value, pattern))


def select(
    numbered: Iterable[tuple[int | str, Exchange | Tunnel]],
    test: str | None = None,
    service: str | None = None,
    errors: bool = False,
) -> Iterator[tuple[int | str, Exchange | Tunnel]]:
    """Keep rows of `test` (glob), touching `service` (caller or callee, glob), failed."""
    for n, x in numbered:
        if test is not None and not _matches(test, x.test):
            continue
        if service is not None and not (
            _matches(service, x.caller.name) or _matches(service, x.callee.name)
        ):
            continue
        if errors and not (x.failed or (isinstance(x, Exchange) and (x.status or 0) >= 400)):
            continue
        yield n, x
