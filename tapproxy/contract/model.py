"""What every contract source (own file, OpenAPI, Pact, protobuf) gives the checker.

A source is loaded into a `Contract`: it judges one exchange at a time (`check`), then
each test's matched interactions as a whole (`check_test`: order, counts, interactions
never exercised). Mismatches are plain values that name the exchange, the test, the place
in the payload and the place in the contract file, so every output can point at both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tapproxy.capture.model import Exchange

__all__ = ["MISMATCH_KINDS", "Contract", "ContractItem", "Hit", "Location", "Mismatch",
           "Verdict"]

#: Every kind of mismatch, with the phrase a report uses for it.
MISMATCH_KINDS = {
    "missing-interaction": "an expected interaction never happened",
    "unexpected-interaction": "no interaction of the contract matches this call",
    "status": "status",
    "header": "header",
    "body-value": "body value",
    "body-type": "body type or schema",
    "missing-field": "missing field",
    "extra-field": "field the contract forbids",
    "order": "order",
    "count": "count",
    "latency": "latency budget",
    "grpc-unknown-method": "unknown gRPC method",
    "grpc-undecodable": "message does not decode as the declared type",
    "grpc-unknown-field": "unknown field number",
    "grpc-streaming": "streaming kind",
    "grpc-status": "gRPC status",
}


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a contract file: what SARIF results and error messages point at."""

    file: Path
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where


@dataclass(frozen=True, slots=True)
class ContractItem:
    """One interaction or operation of a contract: the unit of coverage and of JUnit cases."""

    id: str  # unique within its contract, e.g. "GET /orders/{id}" or a Pact description
    label: str  # what a person reads: "web → orders GET /orders/{id}"
    location: Location
    caller: str | None = None  # None: any caller
    callee: str | None = None  # None: any callee the contract applies to


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way an exchange (or a test's exchanges) broke a contract."""

    kind: str  # a key of MISMATCH_KINDS
    message: str  # one line, e.g. "qty: expected integer, got string"
    contract: Location
    item: str | None = None  # ContractItem.id, None for traffic no item matched
    where: str = ""  # JSON pointer (/items/0/qty), "header content-type", "field 3", ""
    side: str = ""  # "request" | "response" | "" (a whole-test mismatch)
    expected: str = ""  # short renderings, as a report shows them
    actual: str = ""
    exchange_id: str | None = None
    test: str | None = None
    caller: str | None = None
    callee: str | None = None
    excerpt: str = ""  # the payload around `where`, at most a few lines


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a contract says of one exchange it applies to.

    item None: the exchange is traffic the contract covers (its callee, say) but no
    interaction matches it; its mismatches then say so (`unexpected-interaction`).
    """

    item: str | None
    mismatches: tuple[Mismatch, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """An exchange a contract item matched, as `check_test` sees a test's traffic."""

    item: str
    exchange_id: str
    start: int  # request start, ns: the order the test made its calls in
    caller: str | None = None
    callee: str | None = None
    duration_ns: int | None = None


class Contract(Protocol):
    """A loaded contract source; `check_records` drives any number of them in one pass."""

    path: Path
    kind: str  # "tapproxy" | "openapi" | "pact" | "grpc"

    def items(self) -> Sequence[ContractItem]:
        """Every interaction or operation, in file order."""
        ...

    def check(self, x: Exchange) -> Verdict | None:
        """The verdict on `x`, or None when this contract says nothing about it."""
        ...

    #: Whether `check_test` needs each test's hits (only then are they kept in memory).
    per_test: bool

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        """Whole-test checks over the test's hits in time order: order, counts, and
        interactions the test should have made but did not (only when `per_test`)."""
        ...

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        """Whole-capture checks once every exchange was seen; `counts` maps each item id
        to how many exchanges it matched (e.g. Pact: an interaction never exercised)."""
        ...

