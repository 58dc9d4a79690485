"""Records to test runs: a call that outlives its test still joins that test's run."""

from __future__ import annotations

from tapproxy.analysis.grouping import runs_by_test
from tapproxy.capture import TestCase
from tests.spans.build import MS, T0, exchange


def test_a_late_exchange_joins_its_closed_test() -> None:
    records = [
        exchange("a", "pytest", "gw", 0, 10, test="t1"),
        TestCase("t1", T0, T0 + 20 * MS, "failed"),
        exchange("b", "pytest", "gw", 30, 40, test="t2"),
        exchange("late", "web", "db", 5, 1500, test="t1"),  # completes after t1 closed
        TestCase("t2", T0 + 25 * MS, T0 + 50 * MS, "passed"),
    ]
    runs = [(r.name, r.outcome, [x.id for x in r.exchanges]) for r in runs_by_test(records)]
    assert runs == [("t1", "failed", ["a", "late"]), ("t2", "passed", ["b"])]


def test_a_closed_test_is_handed_out_once_the_capture_moves_past_its_grace() -> None:
    def records():
        yield exchange("a", "pytest", "gw", 0, 10, test="t1")
        yield TestCase("t1", T0, T0 + 20 * MS, "failed")
        yield exchange("b", "pytest", "gw", 30, 40, test="t2")
        yield exchange("c", "pytest", "gw", 2000, 2010, test="t2")
        raise AssertionError("read past the point where t1 was complete")

    runs = runs_by_test(records(), grace_ns=1000 * MS)
    assert next(runs).name == "t1"


def test_only_the_named_test_is_kept() -> None:
    records = [exchange("a", "p", "gw", 0, 10, test="t1"),
               exchange("b", "p", "gw", 0, 10, test="t2"),
               TestCase("t2", T0, T0 + 20 * MS, "failed")]
    assert [(r.name, len(r.exchanges)) for r in runs_by_test(records, only="t2")] == [("t2", 1)]
