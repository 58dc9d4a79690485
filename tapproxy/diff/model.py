"""What a diff finds: plain values, no I/O (rendering: report/diff.py).

A `Change` is one difference at one place of an exchange (its status, a header, a JSON
pointer in a body, a line of text, a field of a gRPC message). Values are JSON-able so
that `--format json` and the text renderer take them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tapproxy.capture.frozen import quick_init

__all__ = ["KINDS", "PARTS", "AlignKey", "Change", "PairDiff", "Side", "Summary", "Unpaired"]

#: changed: same place, other value; added: only in the actual; removed: only in the
#: expected; type: same place, a value of another JSON type (5 → "5").
KINDS = ("changed", "added", "removed", "type")

#: Where in an exchange (or tunnel) a change is, in the order they are listed.
PARTS = ("error", "status", "grpc-status", "latency", "request.query", "request.header",
         "request.body", "request.messages", "response.header", "response.trailer",
         "response.body",
         "response.messages", "close", "tunnel")


@quick_init  # built for every difference of every pair: its __init__ is hot
@dataclass(frozen=True, slots=True)
class Change:
    part: str  # one of PARTS
    # JSON pointer in a body or message, header name, "line N" ("/3 line N" in a text
    # message), "" for the whole
    path: str
    kind: str  # one of KINDS
    expected: object = None  # None with kind "added"
    actual: object = None  # None with kind "removed"


@quick_init
@dataclass(frozen=True, slots=True)
class AlignKey:
    """What pairs an exchange with its counterpart: the same call by the same caller in
    the same test; the nth exchange of a key in one capture pairs with the nth in the
    other."""

    test: str | None
    caller: str
    callee: str
    method: str  # "TUNNEL" for a connection not parsed as HTTP
    route: str  # route template, the path with ids masked, or "" for a tunnel

    def astuple(self) -> tuple:
        return (self.test, self.caller, self.callee, self.method, self.route)


@quick_init
@dataclass(frozen=True, slots=True)
class Side:
    """One exchange (or tunnel) of a pair as it is shown: where to find it, and what
    became of it."""

    number: str  # as `show` numbers rows: "12", or "t3" for a tunnel
    id: str
    outcome: str  # "200", "200 NOT_FOUND", "refused", "1,204 / 88 bytes" for a tunnel
    duration_ns: int


@quick_init
@dataclass(frozen=True, slots=True)
class PairDiff:
    """Two exchanges paired by key and occurrence, and how they differ once noise is set
    aside: `noise_count` fields were ignored as noise (`noise`: those fields, when
    asked for with --show-noise)."""

    key: AlignKey
    expected: Side
    actual: Side
    changes: tuple[Change, ...] = ()
    noise_count: int = 0
    noise: tuple[Change, ...] = ()
    actual_key: AlignKey | None = None  # the actual's, where it is another call (--exchange)

    @property
    def differs(self) -> bool:
        return bool(self.changes)


@quick_init
@dataclass(frozen=True, slots=True)
class Unpaired:
    """An exchange only one capture has: `added` (only the actual) or `removed`."""

    kind: str  # "added" | "removed"
    key: AlignKey
    side: Side


@dataclass
class Summary:
    """The counts a diff ends with; exit code 1 when anything differs."""

    pairs: int = 0
    differing: int = 0
    added: int = 0
    removed: int = 0
    noise_fields: int = 0
    learned: list[tuple[str, str]] = field(default_factory=list)  # for --show-noise

    @property
    def equal(self) -> bool:
        return not (self.differing or self.added or self.removed)
