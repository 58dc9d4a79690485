"""The pytest plugin's view of the running test's exchanges in the embedded proxy's
capture, read on from where the last read stopped.

`tapproxy.exchanges()`, `assert_called()` and each failure story ask for the running
test's calls; reading the capture from its start each time made a long suite quadratic.
Tests of one pytest process run one at a time, so only the open test's exchanges are
kept: memory stays that of one test, and each record is read once over the session.
"""

from __future__ import annotations

from pathlib import Path

from tapproxy.capture import CaptureReader, Exchange, open_capture

__all__ = ["RunningTestRecords"]


class RunningTestRecords:
    """The exchanges of the test running now, read on from a capture being written."""

    def __init__(self, capture: Path) -> None:
        self._capture = capture
        self._reader: CaptureReader | None = None
        self._test: str | None = None
        self._found: list[Exchange] = []

    def exchanges(self, nodeid: str) -> list[Exchange]:
        """Test `nodeid`'s exchanges written so far (flushed by the caller), in the order
        they completed. Asking for another test forgets the one before: it is over."""
        if nodeid != self._test:
            # Its records come after those read for the test before it: they were
            # written once it had started.
            self._test, self._found = nodeid, []
        if self._reader is None:
            self._reader = open_capture(self._capture)
        for record in self._reader.records():  # on from the last read; stops at the end
            if isinstance(record, Exchange) and record.test == nodeid:
                self._found.append(record)
        return list(self._found)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
