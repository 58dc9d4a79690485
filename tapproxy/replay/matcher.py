"""Which recorded exchange answers a request, and what was used: the replay's state.

Identical requests get their recorded answers in recorded order, then the last one
again (a create-then-get sequence sees what it saw). A request is first matched among
the exchanges of its own test (named by its `x-tapproxy-test` header, else the test the
control API opened), then among all. No I/O but reading the index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tapproxy.replay.index import CaptureIndex, Entry
from tapproxy.replay.matching import RequestView, request_key
from tapproxy.replay.nearmiss import miss_lines, nearest

__all__ = ["Matcher", "Miss", "ReplayStats"]

_MISSES_KEPT = 100  # near-miss tables kept for `misses` (the log has every one)


@dataclass(frozen=True, slots=True)
class Miss:
    """A request nothing recorded matched, and the near-miss table for it."""

    test: str | None
    callee: str | None
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplayStats:
    matched: int
    unmatched: int
    recorded: int
    unused: int  # recorded exchanges never served
    unused_numbers: tuple[int, ...] = field(default=())  # the first few, for the summary

    @property
    def accuracy(self) -> float | None:
        """Matched requests in percent of all requests; None when none came."""
        total = self.matched + self.unmatched
        return None if total == 0 else 100.0 * self.matched / total

    def lines(self) -> list[str]:
        acc = self.accuracy
        shown = "-" if acc is None else f"{acc:.1f} %"
        out = [f"replayed: {self.matched} matched, {self.unmatched} unmatched, "
               f"{self.unused} of {self.recorded} recordings unused, accuracy {shown}"]
        if self.unused_numbers:
            more = "…" if self.unused > len(self.unused_numbers) else ""
            out.append("unused: " + ", ".join(f"#{n}" for n in self.unused_numbers) + more)
        return out

    @classmethod
    def merged(cls, parts: list[tuple[int, int, int, list[int]]]) -> ReplayStats:
        """The figures of several replays of one capture (pytest-xdist workers), each as
        (matched, unmatched, recorded, unused numbers): a recording is unused when no
        replay used it."""
        unused = set.intersection(*(set(p[3]) for p in parts)) if parts else set()
        return cls(sum(p[0] for p in parts), sum(p[1] for p in parts),
                   max((p[2] for p in parts), default=0), len(unused),
                   tuple(sorted(unused)[:10]))

    def as_json(self) -> dict[str, object]:
        return {"matched": self.matched, "unmatched": self.unmatched,
                "recorded": self.recorded, "unused": self.unused, "accuracy": self.accuracy}


class Matcher:
    """Answers requests from an index, counting what matched, missed and went unused."""

    def __init__(self, index: CaptureIndex) -> None:
        self.index = index
        self.matched = 0
        self.unmatched = 0
        self.open_tests: list[str] = []
        self.misses: list[Miss] = []
        self._cursors: dict[tuple, int] = {}
        self._served = bytearray(len(index.entries))
        self._served_in: dict[str, list[int]] = {}  # test → the entries that answered it

    # -- tests, as the control API or the pytest plugin opens and closes them -------------

    def start_test(self, name: str) -> None:
        if name not in self.open_tests:
            self.open_tests.append(name)

    def end_test(self, name: str) -> list[Miss]:
        """Close the test; its misses (the near-miss tables)."""
        if name in self.open_tests:
            self.open_tests.remove(name)
        return [m for m in self.misses if m.test == name]

    def current_test(self, named: str | None) -> str | None:
        """The request's test: its header's, else the one open test (several: none)."""
        if named:
            return named
        return self.open_tests[0] if len(self.open_tests) == 1 else None

    # -- matching ------------------------------------------------------------------------

    def find(self, view: RequestView, callee: str | None, test: str | None) -> Entry | None:
        """The recorded exchange that answers `view`, or None (counted as unmatched)."""
        index = self.index
        key = request_key(view, index.criteria, index.mask)
        found = self._lookup(view, callee, key)
        if not found and view.body and index.criteria[-1] == "body":
            # A recorded body kept only in part is known by the whole one's SHA-256.
            found = self._lookup(view, callee, (*key[:-1], (
                "bytes", hashlib.sha256(view.body).digest())))
        if not found:
            self.unmatched += 1
            return None
        own = [i for i in found if index.entries[i].test == test] if test else []
        scope = (test, callee, key) if own else (None, callee, key)
        line = own or found
        n = self._cursors.get(scope, 0)
        self._cursors[scope] = n + 1
        i = line[min(n, len(line) - 1)]
        self._served[i] = 1
        if test:
            self._served_in.setdefault(test, []).append(i)
        self.matched += 1
        return index.entries[i]

    def _lookup(self, view: RequestView, callee: str | None, key: tuple) -> list[int]:
        index = self.index
        if callee is not None:
            return index.lookup(callee, view, key)
        return sorted(i for c in index.callees for i in index.lookup(c, view, key))

    def miss(self, view: RequestView, callee: str | None, test: str | None) -> Miss:
        """The near-miss table for a request `find` did not match, kept for its test."""
        candidates = nearest(self.index, view, callee, test)
        m = Miss(test, callee, tuple(miss_lines(self.index, view, callee, test, candidates)))
        self.misses.append(m)
        del self.misses[:-_MISSES_KEPT]
        return m

    def served(self, test: str) -> list[Entry]:
        """The recorded exchanges that answered the test's requests, in that order."""
        return [self.index.entries[i] for i in self._served_in.get(test, ())]

    def unused_numbers(self) -> list[int]:
        """The numbers of every recorded exchange not served (as `show` numbers them)."""
        return [self.index.entries[i].number for i, s in enumerate(self._served) if not s]

    def stats(self, callees: frozenset[str] | None = None) -> ReplayStats:
        """The figures; with `callees`, only their recordings count (those of services
        the replay did not serve could not be used)."""
        entries = self.index.entries
        mine = [i for i in range(len(entries)) if callees is None or entries[i].callee in callees]
        unused = [i for i in mine if not self._served[i]]
        return ReplayStats(self.matched, self.unmatched, len(mine), len(unused),
                           tuple(entries[i].number for i in unused[:10]))
