"""Choosing exchanges from a capture: by test, by service, failures only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

from tapproxy.capture.model import Exchange, Record

__all__ = ["numbered_exchanges", "select"]


def numbered_exchanges(records: Iterable[Record]) -> Iterator[tuple[int, Exchange]]:
    """(N, exchange) with N counting exchanges from 1 in file order: stable under filters."""
    n = 0
    for r in records:
        if isinstance(r, Exchange):
            n += 1
            yield n, r


def _matches(pattern: str, value: str | None) -> bool:
    return value is not None and (value == pattern or fnmatchcase(value, pattern))


def select(
    numbered: Iterable[tuple[int, Exchange]],
    test: str | None = None,
    service: str | None = None,
    errors: bool = False,
) -> Iterator[tuple[int, Exchange]]:
    """Keep exchanges of `test` (glob), touching `service` (caller or callee, glob), failed."""
    for n, x in numbered:
        if test is not None and not _matches(test, x.test):
            continue
        if service is not None and not (
            _matches(service, x.caller.name) or _matches(service, x.callee.name)
        ):
            continue
        if errors and not (x.failed or (x.status or 0) >= 400):
            continue
        yield n, x
