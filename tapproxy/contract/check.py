"""One pass over a capture's records with any number of contracts: mismatches and coverage.

Memory grows with the mismatches found and the distinct edges seen, not with the capture:
per-exchange checks keep nothing, and a test's hits are kept only for contracts that judge
whole tests (`Contract.per_test`), until the capture has been read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tapproxy.capture.model import Exchange, Record, TestCase
from tapproxy.contract.model import Contract, Hit, Mismatch
from tapproxy.noise import path_template

__all__ = ["CheckResult", "Edge", "check_records"]


@dataclass(frozen=True, slots=True)
class Edge:
    """Traffic no contract documents, counted per caller, callee, method and route."""

    caller: str
    callee: str
    method: str
    route: str


@dataclass
class CheckResult:
    """Everything a check found; reports render it, the CLI turns it into an exit code."""

    contracts: Sequence[Contract]
    mismatches: list[Mismatch] = field(default_factory=list)
    #: (contract index, item id) → exchanges that item matched
    covered: Counter[tuple[int, str]] = field(default_factory=Counter)
    undocumented: Counter[Edge] = field(default_factory=Counter)
    exchanges: int = 0  # every exchange read
    checked: int = 0  # those at least one contract applied to
    tests: set[str] = field(default_factory=set)

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def by_exchange(self) -> dict[str, list[Mismatch]]:
        """Mismatches keyed by exchange id (whole-test ones are not in it)."""
        out: dict[str, list[Mismatch]] = {}
        for m in self.mismatches:
            if m.exchange_id is not None:
                out.setdefault(m.exchange_id, []).append(m)
        return out


def _route(x: Exchange) -> str:
    return x.route or path_template(x.request.path)


def check_records(records: Iterable[Record], contracts: Sequence[Contract]) -> CheckResult:
    """Check every exchange in `records` against every contract, then each test as a whole,
    then the run as a whole (interactions never exercised)."""
    result = CheckResult(contracts)
    per_test = [c.per_test for c in contracts]
    hits: dict[tuple[int, str | None], list[Hit]] = {}
    # The per-exchange loop, kept lean (a few µs of every exchange of a large capture):
    # counts in locals, the same test's name added once per run of exchanges.
    numbered = list(enumerate(contracts))
    mismatches, covered, tests = result.mismatches, result.covered, result.tests
    exchanges = checked = 0
    last_test: str | None = None
    for record in records:
        if type(record) is not Exchange and not isinstance(record, Exchange):
            if isinstance(record, TestCase):
                tests.add(record.name)
            continue
        x = record
        exchanges += 1
        test = x.test
        if test is not None and test != last_test:
            tests.add(test)
            last_test = test
        applied = False
        for i, contract in numbered:
            verdict = contract.check(x)
            if verdict is None:
                continue
            applied = True
            if verdict.mismatches:
                mismatches.extend(verdict.mismatches)
            if verdict.item is None:
                continue
            key = (i, verdict.item)
            covered[key] = covered.get(key, 0) + 1
            if per_test[i]:
                hits.setdefault((i, test), []).append(Hit(
                    verdict.item, x.id, x.timing.request_start, x.caller.name,
                    x.callee.name, x.timing.duration_ns))
        if applied:
            checked += 1
        else:
            result.undocumented[Edge(x.caller.name, x.callee.name, x.request.method,
                                     _route(x))] += 1
    result.exchanges, result.checked = exchanges, checked
    for i, contract in enumerate(contracts):
        if not per_test[i]:
            continue
        # Every test, also one that made no call at all: it missed whatever it expected.
        tests = sorted(result.tests | {t for (j, t) in hits if j == i and t is not None})
        if (i, None) in hits:
            tests.append(None)
        for test in tests:
            test_hits = sorted(hits.get((i, test), ()), key=lambda h: (h.start, h.exchange_id))
            result.mismatches.extend(contract.check_test(test, test_hits))
    for i, contract in enumerate(contracts):
        counts = {item.id: result.covered[(i, item.id)] for item in contract.items()}
        result.mismatches.extend(contract.check_run(counts))
    return result
