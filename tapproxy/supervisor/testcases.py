"""Which test case an exchange belongs to: the open tests, and attribution rules."""

from __future__ import annotations

import threading
import time

from tapproxy.capture.model import TestCase
from tapproxy.errors import TapproxyError

__all__ = ["OpenTests", "TestCaseError"]


class TestCaseError(TapproxyError):
    """A control request names a test that is already open, or not open."""

    __test__ = False


class OpenTests:
    """The test cases opened through the control API and not yet closed.

    Thread-safe: an embedded proxy's harness opens and closes tests from its own thread
    while the proxy's event loop attributes requests."""

    __test__ = False

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._requests: dict[str, int] = {}  # requests attributed to each open test
        self._lock = threading.Lock()

    def open(self, name: str, started: int | None = None) -> None:
        """`started` (ns): the time a supervisor gave every worker, so that the test
        case each of them records is the same one."""
        with self._lock:
            if name in self._open:
                raise TestCaseError(f"test {name!r} is already open")
            self._open[name] = started if started is not None else time.time_ns()
            self._requests[name] = 0

    def close(self, name: str, outcome: str | None) -> TestCase:
        return self.end(name, outcome)[0]

    def end(self, name: str, outcome: str | None) -> tuple[TestCase, int]:
        """Close the test `name`: its test case, and how many requests it was given."""
        with self._lock:
            try:
                started = self._open.pop(name)
            except KeyError:
                raise TestCaseError(f"test {name!r} is not open") from None
            requests = self._requests.pop(name, 0)
        return (TestCase(name=name, started=started, ended=time.time_ns(), outcome=outcome),
                requests)

    def requests(self, name: str) -> int:
        """How many requests were attributed to the open test `name` so far (0 if none).

        The pytest plugin warns about a test that sent nothing through the proxy."""
        with self._lock:
            return self._requests.get(name, 0)

    def close_all(self) -> list[TestCase]:
        """Tests still open at shutdown: recorded with no end and no outcome."""
        with self._lock:
            left = [TestCase(name=n, started=s) for n, s in self._open.items()]
            self._open.clear()
            self._requests.clear()
        return left

    def names(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def attribute(self, header_test: str | None) -> tuple[str | None, str | None]:
        """(test, how): the test named by header, else the only open one, else ambiguous."""
        with self._lock:
            if header_test:
                if header_test in self._requests:
                    self._requests[header_test] += 1
                return header_test, "header"
            if len(self._open) == 1:
                only = next(iter(self._open))
                self._requests[only] += 1
                return only, "control"
            if len(self._open) > 1:
                return None, "ambiguous"  # several tests open and no header: never guess
            return None, None
