"""A stream of records to the exchanges of each test, one test at a time.

A test's exchanges are held until its TestCase record (written when it closes) arrives,
then handed out and released, so memory follows the largest test, not the capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tapproxy.capture.model import Exchange, Record, TestCase
from tapproxy.capture.select import test_matches

__all__ = ["TestRun", "runs_by_test"]


@dataclass(frozen=True, slots=True)
class TestRun:
    """One test's exchanges and outcome (None: never closed, or exchanges of no test)."""

    __test__ = False  # not a pytest class

    name: str | None
    outcome: str | None
    exchanges: tuple[Exchange, ...]


def _wanted(pattern: str | None, name: str | None) -> bool:
    return pattern is None or test_matches(pattern, name)


def runs_by_test(records: Iterable[Record], only: str | None = None,
                 grace_ns: int = 10_000_000_000, max_held: int = 256) -> Iterator[TestRun]:
    """Each test's run once the capture has all of it (`only`: a name or glob).

    A call can outlive its test (a slow call the test gave up on) and is written when it
    completes, after the test's TestCase record: a closed test is held until the capture
    has moved `grace_ns` past its end (or `max_held` tests are held, or the file ends).
    Exchanges of no test come last, as one run named None (only when `only` is None)."""
    pending: dict[str | None, list[Exchange]] = {}
    held: dict[str, TestCase] = {}  # closed, in the order they closed
    now = 0
    for r in records:
        if isinstance(r, Exchange):
            if only is None or test_matches(only, r.test):
                pending.setdefault(r.test, []).append(r)
            end = r.timing.end
            if end > now:
                now = end
        elif isinstance(r, TestCase) and _wanted(only, r.name):
            held.pop(r.name, None)
            held[r.name] = r
            now = max(now, r.ended or 0)
        else:
            continue
        while held:
            name, case = next(iter(held.items()))
            if len(held) <= max_held and (case.ended or 0) + grace_ns > now:
                break
            del held[name]
            yield TestRun(name, case.outcome, tuple(pending.pop(name, ())))
    for name, case in held.items():
        yield TestRun(name, case.outcome, tuple(pending.pop(name, ())))
    for name, exchanges in pending.items():
        yield TestRun(name, None, tuple(exchanges))
