"""A stream of records to the exchanges of each test, one test at a time.

A test's exchanges are held until its TestCase record (written when it closes) arrives,
then handed out and released, so memory follows the largest test, not the capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from tapproxy.capture.model import Exchange, Record, TestCase

__all__ = ["TestRun", "runs_by_test"]


@dataclass(frozen=True, slots=True)
class TestRun:
    """One test's exchanges and outcome (None: never closed, or exchanges of no test)."""

    __test__ = False  # not a pytest class

    name: str | None
    outcome: str | None
    exchanges: tuple[Exchange, ...]


def _wanted(pattern: str | None, name: str | None) -> bool:
    return pattern is None or (name is not None and (name == pattern
                                                     or fnmatchcase(name, pattern)))


def runs_by_test(records: Iterable[Record], only: str | None = None) -> Iterator[TestRun]:
    """Each test's run as soon as the capture has all of it (`only`: a name or glob).

    Exchanges of no test come last, as one run named None (only when `only` is None)."""
    pending: dict[str | None, list[Exchange]] = {}
    for r in records:
        if isinstance(r, Exchange):
            if _wanted(only, r.test):
                pending.setdefault(r.test, []).append(r)
        elif isinstance(r, TestCase) and _wanted(only, r.name):
            yield TestRun(r.name, r.outcome, tuple(pending.pop(r.name, ())))
    for name, exchanges in pending.items():
        yield TestRun(name, None, tuple(exchanges))
