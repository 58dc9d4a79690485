"""Choosing exchanges (and tunnels) from a capture: by test, by service, failures only."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

from tapproxy.capture.format import CaptureReader
from tapproxy.capture.model import Exchange, Record, Tunnel

__all__ = ["TestIndex", "numbered_exchanges", "numbered_rows", "select", "test_matches"]


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


def test_matches(pattern: str, name: str | None) -> bool:
    """Whether test `name` (a node id) is `pattern`: the whole id or a glob of it, or,
    for a pattern with no `::`, what follows the file (`test_checkout`, `test_b*`)."""
    if name is None:
        return False
    if name == pattern or fnmatchcase(name, pattern):
        return True
    if "::" in pattern or "::" not in name:
        return False
    inside = name.split("::", 1)[1]  # Class::test_x[param]
    last = name.rsplit("::", 1)[1]
    return any(part == pattern or fnmatchcase(part, pattern) for part in (inside, last))


def select(
    numbered: Iterable[tuple[int | str, Exchange | Tunnel]],
    test: str | None = None,
    service: str | None = None,
    errors: bool = False,
) -> Iterator[tuple[int | str, Exchange | Tunnel]]:
    """Keep rows of `test` (glob), touching `service` (caller or callee, glob), failed."""
    for n, x in numbered:
        if test is not None and not test_matches(test, x.test):
            continue
        if service is not None and not (
            _matches(service, x.caller.name) or _matches(service, x.callee.name)
        ):
            continue
        if errors and not (x.failed or (isinstance(x, Exchange) and (x.status or 0) >= 400)):
            continue
        yield n, x


class TestIndex:
    """Where each test's exchanges are in a capture, to read any test's on demand.

    One pass over the capture keeps two integers per exchange (its record number and
    byte offset), not the exchanges: memory stays small and each test is found without
    reading the capture again (`why --baseline` did, once per test: quadratic).
    `only`: a test name or glob, as `select` takes it. `update()` reads what was
    appended since (a capture still being written: the pytest plugin asks for each
    test's exchanges, and reading the capture again each time was quadratic too).
    """

    __test__ = False  # not a pytest class

    def __init__(self, reader: CaptureReader, only: str | None = None) -> None:
        self._reader = reader
        self._only = only
        self._at: dict[str | None, array] = {}
        self._next: tuple[int, int] | None = None
        self.update()

    def update(self) -> None:
        """Note the exchanges written since the last pass (whole records only)."""
        reader, only = self._reader, self._only
        if self._next is not None:  # back from where `exchanges` read
            reader.resume(self._next)
        for r in reader.records(kinds=(Exchange,)):
            assert isinstance(r, Exchange)
            if only is None or test_matches(only, r.test):
                at = self._at.get(r.test)
                if at is None:
                    at = self._at[r.test] = array("q")
                at.extend(reader.position)
        self._next = reader.next_position

    def exchanges(self, test: str | None) -> list[Exchange]:
        """The exchanges of `test` (None: of no test), in the order they were written."""
        at = self._at.get(test, ())
        out = []
        for i in range(0, len(at), 2):
            x = self._reader.record_at((at[i], at[i + 1]))
            assert isinstance(x, Exchange)
            out.append(x)
        return out
