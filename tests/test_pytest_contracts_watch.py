"""The plugin's contract glue without pytest around it: a capture read on test by test,
passing tests counted, strict errors, what xdist workers hand the controller."""

from __future__ import annotations

import json

from tapproxy.capture import CaptureWriter, new_header
from tapproxy.pytest_contracts import ContractWatch
from tests.contract.field_contract import FieldContract
from tests.spans.build import exchange


def stock(id: str, test: str | None, qty, start: int = 0):
    return exchange(id, "orders", "inventory", start, start + 5, path="/stock", test=test,
                    response_body=json.dumps({"qty": qty}).encode())


def watch(strict: bool = False) -> ContractWatch:
    return ContractWatch([FieldContract("inventory", "/stock", "qty", "integer")],
                         ["inventory=stock.yaml"], strict)


def test_the_capture_is_read_on_where_the_last_test_left_it(tmp_path) -> None:
    path = tmp_path / "proxy.tap"
    writer = CaptureWriter(path, new_header())
    w = watch()
    writer.write(stock("a1", "test_a", "3"))
    writer.flush()
    assert w.end_test("test_a", capture=path) == [
        'orders → inventory GET /stock: /qty: expected integer, got "3"']
    writer.write(stock("b1", "test_b", 4))
    writer.write(stock("a2", "test_a", "late", start=20))  # outlived test_a
    writer.flush()
    assert w.end_test("test_b", capture=path) == []
    writer.write(stock("n1", None, None, start=30))
    writer.close()
    w.finish(path)
    assert (w.count, w.tests) == (2, 2)
    assert w.found == [("test_a", 'orders → inventory GET /stock: /qty: expected integer, '
                                  'got "late"'),
                       ("(no test)", "orders → inventory GET /stock: /qty: expected "
                                     "integer, got null")]


def test_a_passing_tests_mismatches_are_counted_or_strict_its_error() -> None:
    lines = watch().end_test("t", [stock("a1", "t", "3"), stock("a2", "t", "4", start=9)])
    assert len(lines) == 2
    relaxed = watch()
    assert relaxed.test_over("t", "passed", lines) is None
    assert (relaxed.count, relaxed.tests, len(relaxed.found)) == (2, 1, 2)
    assert relaxed.test_over("f", "failed", lines) is None  # its section has them
    assert relaxed.count == 2
    strict = watch(strict=True)
    first, text = strict.test_over("t", "passed", lines)
    assert first == 'contract: orders → inventory GET /stock: /qty: expected integer, got ' \
                    '"3" (+1 more)'
    assert text.splitlines()[1:] == [f"  {line}" for line in lines] and strict.count == 0
    assert text.splitlines()[0].endswith("(--tapproxy-contract-strict):")


def test_workers_counts_add_up_and_the_first_few_are_kept() -> None:
    controller, worker = watch(), watch()
    for i in range(4):
        worker.passed_with(f"test_{i}", [f"line {i}a", f"line {i}b"])
    controller.passed_with("test_c", ["line c"])
    controller.merge(json.loads(json.dumps(worker.output())))  # as execnet hands it on
    assert (controller.count, controller.tests) == (9, 5)
    assert len(controller.found) == 5 and controller.found[0] == ("test_c", "line c")
    lines = controller.summary("/tmp/run.tap")
    assert lines[0] == "contract mismatches in passing tests: 9 in 5 tests"
    assert lines[-1] == "  tapproxy check /tmp/run.tap --contract inventory=stock.yaml"
    assert watch().summary("/tmp/run.tap") == []
