"""The pytest plugin's contract checks: each test's mismatches when it ends, and those of
passing tests summed up at the end of the run.

Glue only: checking is `tapproxy.contract.incremental`'s, the lines `report.mismatches`'s.
The embedded proxy's capture is read on from where the last test left it, so each
exchange is read and checked once, however many tests the run has.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from tapproxy.capture import CaptureReader, Exchange, open_capture
from tapproxy.contract.incremental import IncrementalCheck, check_test
from tapproxy.contract.model import Contract, Mismatch
from tapproxy.report.mismatches import call_label, check_command, passing_summary, summary_line

__all__ = ["ContractWatch"]

SHOWN = 5  # mismatches of passing tests shown at the end of the run
PROPERTIES = 20  # JUnit properties per test, at most


class ContractWatch:
    """The session's contracts and what passing tests broke of them."""

    def __init__(self, contracts: Sequence[Contract], specs: Sequence[str],
                 strict: bool) -> None:
        self.contracts = tuple(contracts)
        self.specs = tuple(specs)
        self.strict = strict
        self._check = IncrementalCheck(contracts)
        self._reader: CaptureReader | None = None
        # Each broken call's label, until its test is handed out (the check keeps ids).
        self._calls: dict[str, str] = {}
        self.found: list[tuple[str, str]] = []  # (node id, line), the first SHOWN
        self.count = 0  # mismatches in passing tests (and late ones)
        self.tests = 0  # passing tests with mismatches

    def judge(self, exchanges: Iterable[Exchange], nodeid: str) -> list[Mismatch]:
        """The mismatches of one test's `exchanges`, for its failure section (apart from
        what `end_test` will hand out)."""
        return check_test(exchanges, self.contracts, nodeid)

    def read_on(self, capture: Path) -> None:
        """Check the exchanges written to `capture` since the last call."""
        if self._reader is None:
            self._reader = open_capture(capture)
        for record in self._reader.records():
            if isinstance(record, Exchange):
                self._add(record)

    def _add(self, x: Exchange) -> None:
        if self._check.add(x):
            self._calls[x.id] = call_label(x)

    def end_test(self, nodeid: str, exchanges: Iterable[Exchange] = (),
                 capture: Path | None = None) -> list[str]:
        """One line per mismatch of test `nodeid`: its calls read on from `capture`, or
        given (`exchanges`)."""
        if capture is not None:
            self.read_on(capture)
        for x in exchanges:
            self._add(x)
        return self._lines(self._check.end_test(nodeid))

    def test_over(self, nodeid: str, outcome: str, lines: Sequence[str]
                  ) -> tuple[str, str] | None:
        """After test `nodeid`: a passing test's mismatches are counted for the end of
        the run or, strict, are its error: (one line for the run's summary, the whole
        text). A failing test's section shows them already."""
        if not lines or outcome in ("failed", "error"):
            return None
        if not self.strict:
            self.passed_with(nodeid, lines)
            return None
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        return f"contract: {lines[0]}{more}", self.error_text(lines)

    def _lines(self, mismatches) -> list[str]:
        lines = [summary_line(m, self._calls.get(m.exchange_id or "")) for m in mismatches]
        for m in mismatches:
            self._calls.pop(m.exchange_id or "", None)
        return lines

    def passed_with(self, nodeid: str, lines: Sequence[str]) -> None:
        """Count a test that passed although its calls broke a contract."""
        self.count += len(lines)
        self.tests += 1
        self.found.extend((nodeid, line) for line in lines[: SHOWN - len(self.found)])

    def finish(self, capture: Path | None) -> None:
        """At the end of the session: calls that outlived their test, calls of no test."""
        if capture is not None:
            self.read_on(capture)
        if self._reader is not None:
            self._reader.close()
        by_test: dict[str, list] = {}
        for m in [*self._check.late, *self._check.end_test(None)]:
            by_test.setdefault(m.test or "(no test)", []).append(m)
        for test, mismatches in by_test.items():
            self.passed_with(test, self._lines(mismatches))

    def output(self) -> dict:
        """What an xdist worker hands the controller."""
        return {"found": self.found, "count": self.count, "tests": self.tests}

    def merge(self, out: dict) -> None:
        self.count += out.get("count", 0)
        self.tests += out.get("tests", 0)
        found = [tuple(f) for f in out.get("found", ())]
        self.found.extend(found[: SHOWN - len(self.found)])

    def summary(self, capture: str) -> list[str]:
        """The end-of-run lines; none when passing tests broke nothing."""
        if not self.count:
            return []
        return passing_summary(self.found, self.count, self.tests,
                               check_command(capture, self.specs), limit=SHOWN)

    def error_text(self, lines: Sequence[str], width: int = 80) -> str:
        """What a test that passed errors with under --tapproxy-contract-strict."""
        out = ["tapproxy: the test's calls broke a contract (--tapproxy-contract-strict):"]
        for line in lines:
            out.extend(textwrap.wrap(line, width, initial_indent="  ",
                                     subsequent_indent="    "))
        return "\n".join(out)
