"""Checking exchanges as they are recorded, and each test as a whole when it ends.

What the failure story and the pytest plugin need: a test's mismatches the moment it
ends, without reading the capture again. Each exchange is judged once as it arrives;
only the open tests' mismatches and, for contracts that judge whole tests, their hits
are kept, and a test's are released when it ends. Whole-run checks (interactions never
exercised) are `check_records`'s: a pytest run or one test's story sees only some tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tapproxy.capture.model import Exchange
from tapproxy.contract.model import Contract, Hit, Mismatch

__all__ = ["IncrementalCheck", "check_test"]


class IncrementalCheck:
    """Feed it exchanges (`add`) in any order of tests; `end_test` hands a test's out."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self.contracts = tuple(contracts)
        self._per_test = [c.per_test for c in self.contracts]
        self._open: dict[str | None, list[Mismatch]] = {}
        self._hits: dict[tuple[int, str | None], list[Hit]] = {}
        self._ended: set[str | None] = set()
        #: mismatches of exchanges that arrived after their test ended (a call that
        #: outlived its test): no test's report has them any more
        self.late: list[Mismatch] = []

    def add(self, x: Exchange) -> list[Mismatch]:
        """Judge `x` against every contract; keep what its test will need. Its own
        mismatches, for a caller that wants to say which call they are of."""
        late = x.test in self._ended  # exchanges of no test are the open "test" None
        found: list[Mismatch] = []
        for i, contract in enumerate(self.contracts):
            verdict = contract.check(x)
            if verdict is None:
                continue
            if verdict.mismatches:
                found.extend(verdict.mismatches)
                target = self.late if late else self._open.setdefault(x.test, [])
                target.extend(verdict.mismatches)
            if verdict.item is not None and self._per_test[i] and not late:
                self._hits.setdefault((i, x.test), []).append(Hit(
                    verdict.item, x.id, x.timing.request_start, x.caller.name,
                    x.callee.name, x.timing.duration_ns))
        return found

    def peek(self, test: str | None) -> list[Mismatch]:
        """The mismatches of `test` so far, whole-test ones included (it stays open)."""
        return self._collect(test, forget=False)

    def end_test(self, test: str | None) -> list[Mismatch]:
        """The mismatches of `test`, whole-test ones included; it is then forgotten."""
        out = self._collect(test, forget=True)
        if test is not None:
            self._ended.add(test)
        return out

    def _collect(self, test: str | None, forget: bool) -> list[Mismatch]:
        out = list(self._open.pop(test, ()) if forget else self._open.get(test, ()))
        for i, contract in enumerate(self.contracts):
            if not self._per_test[i]:
                continue
            hits = self._hits.pop((i, test), ()) if forget else self._hits.get((i, test), ())
            ordered = sorted(hits, key=lambda h: (h.start, h.exchange_id))
            out.extend(contract.check_test(test, ordered))
        return out


def check_test(exchanges: Iterable[Exchange], contracts: Sequence[Contract],
               test: str | None) -> list[Mismatch]:
    """Every mismatch of one test's `exchanges`, per exchange and as a whole test."""
    check = IncrementalCheck(contracts)
    for x in exchanges:
        check.add(x)
    return check.end_test(test)
