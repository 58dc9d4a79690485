"""`check_records` with an own-format contract over capture records: every mismatch class,
the 4xx rule, the choice among interactions, coverage and undocumented traffic."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tapproxy.capture import Headers, Response, TestCase
from tapproxy.contract.check import Edge, check_records
from tapproxy.contract.load import load_contract
from tests.spans.build import MS, T0, exchange

CONTRACT = """\
tapproxy: 1
interactions:
  - id: reserve
    caller: web
    callee: inventory
    request:
      method: POST
      path: /reserve
      body: {sku: {type: string}, qty: {type: integer}}
    response:
      status: [200, 400]
      headers: {content-type: {regex: "^application/json"}}
      body:
        fields: {reserved: {type: integer, optional: true}, error: {optional: true}}
        additional: false
    budget: 100ms
  - id: item
    caller: gateway
    callee: inventory
    request:
      method: GET
      path: "/items/{id}"
      params: {id: {type: integer}}
      query: {full: {type: boolean, optional: true}}
    response:
      status: 200
      body:
        id: {type: integer}
        price: {range: [0, 1000]}
        tags: {each: {type: string}, max: 2}
        state: {one-of: [open, closed]}
  - id: stock
    callee: stock
    request: {path: /stock.Stock/Get}
    response: {grpc-status: [OK, NOT_FOUND]}
    count: any
  - id: health
    callee: inventory
    request: {method: GET, path: /health}
    count: {at-least: 1}
tests:
  - test: test_checkout
    sequence: [item, reserve]
    count: {reserve: 1}
"""

TEST = "tests/test_shop.py::test_checkout"
JSON = (("content-type", "application/json"),)
ITEM = {"id": 9, "price": 12.5, "tags": ["a"], "state": "open"}


@pytest.fixture
def contract_file(tmp_path):
    path = tmp_path / "expected.yaml"
    path.write_text(CONTRACT)
    return path


def reserve(id="r", start=10, body=None, answer=None, status=200, headers=JSON,
            test=TEST, end=None):
    x = exchange(id, "web", "inventory", start, end or start + 20, method="POST",
                 path="/reserve", status=status, test=test,
                 request_body=json.dumps(body or {"sku": "A-1", "qty": 2}).encode(),
                 response_body=json.dumps(answer or {"reserved": 2}).encode())
    return dataclasses.replace(x, response=dataclasses.replace(x.response,
                                                               headers=Headers(headers)))


def item(id="i", start=0, answer=None, path="/items/9", test=TEST):
    return exchange(id, "gateway", "inventory", start, start + 5, path=path, test=test,
                    response_body=json.dumps(answer or ITEM).encode())


def health(id="h", start=50, test=TEST):
    return exchange(id, "pytest", "inventory", start, start + 1, path="/health", test=test)


def stock(code: str, id="s"):
    x = exchange(id, "web", "stock", 60, 70, method="POST", path="/stock.Stock/Get",
                 headers=(("content-type", "application/grpc"),), test=TEST)
    return dataclasses.replace(x, response=Response(
        200, "OK", "HTTP/2.0", Headers((("content-type", "application/grpc"),)),
        trailers=Headers((("grpc-status", code),))))


def run(contract_file, *records, spec=None):
    contract = load_contract(spec or contract_file)
    return check_records([*records, TestCase(TEST, T0, T0 + 100 * MS, "passed")], [contract])


def found(result):
    return [(m.kind, m.item, m.side, m.where) for m in result.mismatches]


def test_a_clean_run_has_no_mismatches_and_counts_coverage(contract_file) -> None:
    result = run(contract_file, item(), reserve(), health(), stock("0"),
                 exchange("u", "gateway", "payments", 80, 90, path="/pay/7", test=TEST))
    assert result.mismatches == []
    assert result.exchanges == 5 and result.checked == 4
    assert result.covered[(0, "reserve")] == 1 and result.covered[(0, "item")] == 1
    assert list(result.undocumented.items()) == [(Edge("gateway", "payments", "GET",
                                                       "/pay/{id}"), 1)]


@pytest.mark.parametrize(("records", "expected"), [
    ((reserve(status=500),), [("status", "reserve", "response", "status")]),
    ((reserve(headers=(("content-type", "text/plain"),)),),
     [("header", "reserve", "response", "header content-type")]),
    ((reserve(headers=()),), [("header", "reserve", "response", "header content-type")]),
    ((reserve(body={"sku": "A-1", "qty": "2"}),),
     [("body-type", "reserve", "request", "/qty")]),
    ((reserve(answer={"reserved": "2"}),), [("body-type", "reserve", "response", "/reserved")]),
    ((reserve(body={"qty": 2}),), [("missing-field", "reserve", "request", "/sku")]),
    ((reserve(answer={"reserved": 2, "debug": 1}),),
     [("extra-field", "reserve", "response", "/debug")]),
    ((reserve(end=10 + 150),), [("latency", "reserve", "", "")]),
])
def test_each_exchange_mismatch_class(contract_file, records, expected) -> None:
    result = run(contract_file, item(), *records, health())
    assert found(result) == expected
    (m,) = result.mismatches
    assert (m.exchange_id, m.test, m.caller, m.callee) == ("r", TEST, "web", "inventory")
    assert m.contract.file == contract_file and m.contract.line is not None


def test_body_values_of_a_nested_answer(contract_file) -> None:
    answer = {"id": "9", "price": 5000, "tags": ["a", "b", 3], "state": "lost"}
    result = run(contract_file, item(answer=answer), reserve(), health())
    assert found(result) == [
        ("body-type", "item", "response", "/id"),
        ("body-value", "item", "response", "/price"),
        ("body-value", "item", "response", "/tags"),
        ("body-type", "item", "response", "/tags/2"),
        ("body-value", "item", "response", "/state"),
    ]
    price = result.mismatches[1]
    assert (price.expected, price.actual) == ("0 to 1000", "integer 5000")
    assert '"price": 5000,  ◀' in price.excerpt
    # The matcher's own line in the file: `price: {range: [0, 1000]}` is line 29.
    assert (price.contract.line, price.contract.column) == (29, 16)


def test_query_values_and_path_params_are_checked_as_text(contract_file) -> None:
    result = run(contract_file, item(path="/items/9?full=yes"), reserve(), health())
    assert found(result) == [("body-type", "item", "request", "query full")]
    result = run(contract_file, item(path="/items/nine?full=true"), reserve(), health())
    assert found(result) == [("body-type", "item", "request", "path id")]
    assert result.mismatches[0].message == \
        'request path {id}: expected integer, got string "nine"'


def test_grpc_status(contract_file) -> None:
    assert found(run(contract_file, item(), reserve(), health(), stock("5"))) == []
    result = run(contract_file, item(), reserve(), health(), stock("13"))
    assert found(result) == [("grpc-status", "stock", "response", "grpc-status")]
    assert (result.mismatches[0].expected, result.mismatches[0].actual) == \
        ("OK or NOT_FOUND", "INTERNAL")


def test_a_documented_4xx_skips_the_request_checks(contract_file) -> None:
    bad = {"sku": "A-1", "qty": "two"}
    refused = reserve(body=bad, status=400, answer={"error": "qty must be an integer"})
    assert found(run(contract_file, item(), refused, health())) == []
    # Answered 200, the same request is a broken one.
    accepted = reserve(body=bad, status=200)
    assert found(run(contract_file, item(), accepted, health())) == \
        [("body-type", "reserve", "request", "/qty")]


def test_the_interaction_that_fits_best_is_chosen(tmp_path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("""\
tapproxy: 1
interactions:
  - id: ok
    request: {method: POST, path: /reserve, body: {qty: {type: integer}}}
    response: {status: 200}
    count: any
  - id: refused
    request: {method: POST, path: /reserve, body: {qty: {type: string}}}
    response: {status: 422}
    count: any
""")
    result = check_records([reserve(body={"qty": "x"}, status=422)], [load_contract(path)])
    assert result.mismatches == [] and result.covered[(0, "refused")] == 1
    result = check_records([reserve(body={"qty": "x"}, status=200)], [load_contract(path)])
    assert found(result) == [("status", "refused", "response", "status")]


def test_whole_test_order_count_and_missing(contract_file) -> None:
    assert found(run(contract_file, reserve(start=0), item(start=30), health())) == \
        [("order", "reserve", "", "")]
    order = run(contract_file, reserve(start=0), item(start=30), health()).mismatches[0]
    assert (order.expected, order.actual, order.exchange_id) == \
        ("item → reserve", "reserve → item", "r")
    twice = run(contract_file, item(), reserve(), reserve("r2", start=40), health())
    assert found(twice) == [("count", "reserve", "", "")]
    assert (twice.mismatches[0].actual, twice.mismatches[0].exchange_id) == ("2 calls", "r2")
    # Missing from the test, and so from the whole capture.
    missing = run(contract_file, reserve(), health()).mismatches
    assert [(m.kind, m.item, m.test) for m in missing] == [
        ("missing-interaction", "item", TEST), ("missing-interaction", "item", None)]


def test_missing_interactions_over_the_whole_capture(contract_file) -> None:
    result = run(contract_file, item(), reserve())
    assert found(result) == [("missing-interaction", "health", "", "")]
    (m,) = result.mismatches
    assert (m.test, m.exchange_id, m.expected, m.actual) == (None, None, "at least 1", "never")


def test_a_tests_entry_no_test_matches_says_so(contract_file) -> None:
    result = check_records([item(test="t2"), reserve(test="t2"), health(test="t2")],
                           [load_contract(contract_file)])
    kinds = [(m.kind, m.message) for m in result.mismatches]
    assert ("missing-interaction",
            "no test of this capture matches 'test_checkout'") in kinds


def test_a_contract_bound_to_a_service_flags_calls_it_does_not_describe(
        contract_file) -> None:
    extra = exchange("m", "web", "inventory", 70, 71, path="/metrics", test=TEST)
    assert found(run(contract_file, item(), reserve(), health(), extra)) == []
    bound = run(contract_file, item(), reserve(), health(), extra,
                spec=f"inventory={contract_file}")
    assert found(bound) == [("unexpected-interaction", None, "request", "")]
    assert bound.mismatches[0].actual == "GET /metrics"
    assert bound.checked == 4 and not bound.undocumented


def test_one_contract_checks_two_captures_alike(contract_file) -> None:
    contract = load_contract(contract_file)
    with_test = [item(), reserve(), health(), TestCase(TEST, T0, T0 + 100 * MS, "passed")]
    without = [item(test="t2"), reserve(test="t2"), health(test="t2")]
    assert check_records(with_test, [contract]).mismatches == []
    assert [m.kind for m in check_records(without, [contract]).mismatches] == \
        ["missing-interaction"]
    assert [m.kind for m in check_records(without, [contract]).mismatches] == \
        ["missing-interaction"]
    assert check_records(with_test, [contract]).mismatches == []


def test_a_call_without_the_body_an_interaction_requires(tmp_path) -> None:
    # Two interactions on one path: the bodiless call answered 404 is tried against the one
    # requiring a body too; the mismatch it gets there must not break the check.
    path = tmp_path / "c.yaml"
    path.write_text("""\
tapproxy: 1
interactions:
  - id: create
    callee: orders
    request: {method: POST, path: /orders, body: {type: array}}
    response: {status: 200}
    count: any
  - id: missing
    callee: orders
    request: {method: POST, path: /orders}
    response: {status: 404}
    count: any
""")
    x = exchange("x1", "web", "orders", 0, 5, method="POST", path="/orders", status=404)
    result = check_records([x], [load_contract(str(path))])
    assert result.exchanges == 1 and result.checked == 1
    assert result.mismatches == []  # the 404 interaction matches it exactly
    y = exchange("x2", "web", "orders", 0, 5, method="POST", path="/orders", status=500)
    result = check_records([y], [load_contract(str(path))])
    assert result.mismatches and all(m.exchange_id == "x2" for m in result.mismatches)
