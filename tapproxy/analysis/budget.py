"""Latency budgets (`--budget 500ms`, `--budget inventory:/stock/{sku}=200ms`).

An exchange slower than its budget is a failure of its own, even with a 200.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from tapproxy.capture.model import Exchange
from tapproxy.capture.routes import Route, RouteTable, parse_route
from tapproxy.errors import UsageError

__all__ = ["Budget", "parse_budget", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m)")
_NS = {"us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}


def parse_duration(text: str, what: str = "--budget") -> int:
    """`500ms`, `1.5s`, `250us`, `2m` → nanoseconds (UsageError naming `what`)."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"bad {what} duration {text!r}: expected e.g. 500ms, 1.5s, 250us")
    ns = round(float(m.group(1)) * _NS[m.group(2)])
    if ns <= 0:
        raise UsageError(f"bad {what} duration {text!r}: must be more than zero")
    return ns


@dataclass(frozen=True, slots=True)
class Budget:
    """The overall limit and per-route limits (each route's value, in ns); the most
    specific route wins, as `--route` decides."""

    overall_ns: int | None = None
    routes: RouteTable = field(default_factory=RouteTable)

    def __bool__(self) -> bool:
        return self.overall_ns is not None or bool(self.routes)

    def limit_ns(self, x: Exchange) -> int | None:
        """The budget `x` must meet, or None."""
        # A known route is matched as a path: /orders/{id} is one of /orders/{sku}'s paths.
        found = self.routes.match(x.callee.name, x.route or x.request.path)
        return self.overall_ns if found is None else found[0].value  # type: ignore[return-value]

    def overrun_ns(self, x: Exchange) -> int | None:
        """By how much `x` went over its budget, or None when within it."""
        limit = self.limit_ns(x)
        if limit is None or x.timing.duration_ns <= limit:
            return None
        return x.timing.duration_ns - limit


def parse_budget(specs: tuple[str, ...] | list[str]) -> Budget:
    """`DURATION` (every exchange) or `[SERVICE:]/route/{param}=DURATION`, repeatable."""
    overall = None
    routes: list[Route] = []
    for spec in specs:
        target, sep, duration = spec.rpartition("=")
        if not sep:
            overall = parse_duration(spec)
            continue
        try:
            route = parse_route(target)
        except UsageError:
            raise UsageError(f"bad --budget {spec!r}: expected DURATION or "
                             "[SERVICE:]/path/{param}=DURATION") from None
        routes.append(dataclasses.replace(route, value=parse_duration(duration)))
    return Budget(overall, RouteTable(routes))
