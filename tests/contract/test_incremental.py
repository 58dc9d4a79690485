"""Checking exchanges as they are recorded: a test's mismatches when it ends, the same
as the one-pass check finds for it, and nothing kept once it is handed out."""

from __future__ import annotations

import json

from tapproxy.contract import check_records
from tapproxy.contract.incremental import IncrementalCheck, check_test
from tests.contract.field_contract import FieldContract
from tests.spans.build import exchange


def stock(id: str, test: str | None, qty, start: int = 0):
    return exchange(id, "orders", "inventory", start, start + 5, path="/stock", test=test,
                    response_body=json.dumps({"qty": qty}).encode())


def test_a_tests_mismatches_come_out_when_it_ends_and_only_then() -> None:
    check = IncrementalCheck([FieldContract("inventory", "/stock", "qty", "integer")])
    check.add(stock("a1", "test_a", "3"))
    check.add(stock("b1", "test_b", 3))
    check.add(stock("a2", "test_a", 4))
    assert [m.exchange_id for m in check.peek("test_a")] == ["a1"]
    [m] = check.end_test("test_a")
    assert (m.exchange_id, m.where, m.expected, m.actual) == ("a1", "/qty", "integer", '"3"')
    assert check.end_test("test_a") == []  # handed out once
    assert check.end_test("test_b") == []
    assert check.late == []


def test_a_call_that_outlives_its_test_is_late_not_lost() -> None:
    check = IncrementalCheck([FieldContract("inventory", "/stock", "qty", "integer")])
    assert check.end_test("test_a") == []
    check.add(stock("a9", "test_a", None, start=50))
    assert [(m.kind, m.exchange_id) for m in check.late] == [("body-type", "a9")]
    assert check.end_test("test_a") == []


def test_exchanges_of_no_test_are_the_test_none() -> None:
    check = IncrementalCheck([FieldContract("inventory", "/stock", "qty", "integer")])
    check.add(stock("n1", None, "x"))
    assert [m.exchange_id for m in check.end_test(None)] == ["n1"]


def test_whole_test_checks_see_the_tests_hits_in_time_order() -> None:
    contract = FieldContract("inventory", "/stock", "qty", "integer", calls_per_test=2)
    check = IncrementalCheck([contract])
    check.add(stock("a1", "test_a", 1))
    check.add(stock("b1", "test_b", 1))
    check.add(stock("b2", "test_b", 2, start=10))
    [m] = check.peek("test_a")
    assert (m.kind, m.test, m.actual) == ("count", "test_a", "1 calls")
    assert check.peek("test_a") == [m]  # peeking keeps the hits
    assert check.end_test("test_a") == [m]
    assert check.end_test("test_b") == []


def test_one_test_checked_alone_finds_what_the_one_pass_check_finds_for_it() -> None:
    contracts = [FieldContract("inventory", "/stock", "qty", "integer", calls_per_test=3),
                 FieldContract("inventory", "/stock", "qty", "string")]
    xs = [stock(f"x{i}", f"test_{i % 3}", i if i % 2 else str(i), start=i * 10)
          for i in range(12)]
    whole = check_records(xs, contracts)
    for t in ("test_0", "test_1", "test_2"):
        alone = check_test([x for x in xs if x.test == t], contracts, t)
        assert sorted(alone, key=repr) == sorted(
            (m for m in whole.mismatches
             if m.test == t or (m.exchange_id and m.exchange_id in
                                {x.id for x in xs if x.test == t})), key=repr)
        assert alone  # each test breaks one of the two
