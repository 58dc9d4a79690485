"""Which test case an exchange belongs to: the open tests, and attribution rules."""

from __future__ import annotations

import time

from tapproxy.capture.model import TestCase
from tapproxy.errors import TapproxyError

__all__ = ["OpenTests", "TestCaseError"]


class TestCaseError(TapproxyError):
    """A control request names a test that is already open, or not open."""

    __test__ = False


class OpenTests:
    """The test cases opened through the control API and not yet closed."""

    __test__ = False

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def open(self, name: str) -> None:
        if name in self._open:
            raise TestCaseError(f"test {name!r} is already open")
        self._open[name] = time.time_ns()

    def close(self, name: str, outcome: str | None) -> TestCase:
        try:
            started = self._open.pop(name)
        except KeyError:
            raise TestCaseError(f"test {name!r} is not open") from None
        return TestCase(name=name, started=started, ended=time.time_ns(), outcome=outcome)

    def close_all(self) -> list[TestCase]:
        """Tests still open at shutdown: recorded with no end and no outcome."""
        left = [TestCase(name=n, started=s) for n, s in self._open.items()]
        self._open.clear()
        return left

    def names(self) -> list[str]:
        return list(self._open)

    def attribute(self, header_test: str | None) -> tuple[str | None, str | None]:
        """(test, how): the test named by header, else the only open one, else ambiguous."""
        if header_test:
            return header_test, "header"
        if len(self._open) == 1:
            return next(iter(self._open)), "control"
        if len(self._open) > 1:
            return None, "ambiguous"  # several tests open and no header: never guess
        return None, None
