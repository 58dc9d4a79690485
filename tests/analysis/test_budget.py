"""--budget limits: matched by the one route matcher, as --route matches."""

from __future__ import annotations

import pytest

from tapproxy.analysis import parse_budget
from tapproxy.errors import UsageError
from tests.spans.build import exchange

MS = 1_000_000


def limit(budget: list[str], callee: str, path: str, route: str | None = None) -> int | None:
    x = exchange("a", "tests", callee, 0, 1, path=path, route=route)
    return parse_budget(budget).limit_ns(x)


@pytest.mark.parametrize(("callee", "path", "route", "ms"), [
    ("shop", "/orders/7?x=1", None, 200),  # shop's own route before any service's
    ("web", "/orders/7", None, 300),
    ("web", "/orders/new", None, 50),  # more literal text is more specific
    ("web", "/orders/7", "/orders/{orderId}", 300),  # a known route is one of its paths
    ("web", "/health", None, 900),  # the overall limit
])
def test_the_most_specific_route_sets_the_limit(callee, path, route, ms) -> None:
    budget = ["900ms", "/orders/{id}=300ms", "shop:/orders/{id}=200ms", "/orders/new=50ms"]
    assert limit(budget, callee, path, route) == ms * MS


def test_without_an_overall_limit_an_unmatched_call_has_none() -> None:
    assert limit(["/orders/{id}=300ms"], "web", "/health") is None


@pytest.mark.parametrize(("spec", "why"), [
    ("orders=1s", "bad --budget 'orders=1s'"),
    ("/orders/{id=1s", "bad --budget '/orders/{id=1s'"),
    ("/orders=fast", "bad --budget duration 'fast'"),
])
def test_bad_budgets_are_usage_errors(spec, why) -> None:
    with pytest.raises(UsageError, match=why):
        parse_budget([spec])
