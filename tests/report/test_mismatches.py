"""Contract mismatches in the failure story: the root's why, the lines under the root,
the JSON, the end-of-run summary."""

from __future__ import annotations

import json
from pathlib import Path

from tapproxy.analysis import first_failure
from tapproxy.contract.incremental import check_test
from tapproxy.contract.model import Location, Mismatch
from tapproxy.report.mismatches import (
    call_label,
    failure_details,
    mismatch_lines,
    mismatch_text,
    passing_summary,
    summary_line,
)
from tapproxy.report.story import root_summary, story_json, story_lines
from tests.contract.field_contract import FieldContract
from tests.spans.build import exchange

TEST = "tests/test_shop.py::test_checkout"


def _broken_field_under_a_500(qty='"3"'):
    return [
        exchange("top", "tests", "gateway", 0, 100, status=500, method="POST",
                 path="/checkout", test=TEST),
        exchange("stock", "gateway", "inventory", 10, 20, path="/stock", test=TEST,
                 response_body=b'{"sku": "A-1", "qty": ' + qty.encode() + b'}'),
    ]


_AT = Location(Path("c.yaml"), 4, 7)


def _mismatch(where="/qty", expected="integer", actual='"3"', xid="x1", contract=_AT,
              **kw) -> Mismatch:
    return Mismatch("body-type", "qty is not an integer", contract, "GET /stock", where,
                    "response", expected, actual, xid, **kw)


def test_a_mismatch_reads_as_place_expected_and_actual() -> None:
    assert mismatch_text(_mismatch()) == '/qty: expected integer, got "3"'
    assert mismatch_text(_mismatch(where="")) == 'body type or schema: expected integer, ' \
                                                 'got "3"'
    assert mismatch_text(_mismatch(expected="", actual="")) == "qty is not an integer"


def test_several_mismatches_of_one_exchange_are_the_first_and_how_many_more() -> None:
    details = failure_details([_mismatch(), _mismatch(where="/sku", xid="x2"),
                               _mismatch(where="/price"), _mismatch(where="/id"),
                               _mismatch(xid=None)])
    assert details == {"x1": '/qty: expected integer, got "3" (+2 more)',
                       "x2": '/sku: expected integer, got "3"'}


def test_a_200_with_a_broken_field_that_caused_a_500_upstream_is_the_root() -> None:
    xs = _broken_field_under_a_500()
    mismatches = check_test(xs, [FieldContract("inventory", "/stock", "qty", "integer")],
                            TEST)
    story = first_failure(xs, test=TEST, outcome="failed",
                          contract=failure_details(mismatches))
    assert story.root is not None and story.root.number == 2
    lines = story_lines(story, mismatches=mismatches)
    assert max(map(len, lines)) <= 80, lines
    at = lines.index("contract mismatches (1):")
    assert lines[1:at] == [
        "  1 tests → gateway  POST /checkout                     500   100 ms  propagated",
        "  2   gateway → inventory  GET /stock                   200    10 ms  ◀ root",
        "root #2 gateway → inventory  GET /stock  200",
        '  why: contract mismatch: /qty: expected integer, got "3"; it made no calls',
        "  request:  GET http://inventory/stock",
        "  response: 200",
        '            {"sku": "A-1", "qty": "3"}',
    ]
    assert lines[at + 1:at + 4] == [
        '  #2 response /qty: expected integer, got "3"',
        "      contract: fields.yaml:7:9 (GET /stock)",
        '      │ {"sku": "A-1", "qty": "3"}',
    ]
    assert lines[at + 4] == "consequences:"
    assert root_summary(story) == ('gateway → inventory GET /stock 200: contract '
                                   'mismatch: /qty: expected integer, got "3"; it made no '
                                   'calls')
    data = story_json(story, mismatches)
    [m] = data["root"]["contract_mismatches"]
    assert (m["where"], m["expected"], m["actual"], m["contract"], m["exchange_id"]) == (
        "/qty", "integer", '"3"', {"file": "fields.yaml", "line": 7, "column": 9}, "stock")
    assert data["contract_mismatches"] == [m]
    json.dumps(data)


def test_without_the_contract_the_same_calls_name_the_500() -> None:
    story = first_failure(_broken_field_under_a_500(), test=TEST, outcome="failed")
    assert story.root.number == 1
    assert "contract mismatches" not in "\n".join(story_lines(story))
    assert story_json(story)["contract_mismatches"] == []


def test_a_whole_test_mismatch_is_listed_without_a_call_number() -> None:
    xs = _broken_field_under_a_500("3")
    contract = FieldContract("inventory", "/stock", "qty", "integer", calls_per_test=2)
    mismatches = check_test(xs, [contract], TEST)
    story = first_failure(xs, test=TEST, outcome="failed",
                          contract=failure_details(mismatches))
    assert story.root.number == 1  # the count is no call's failure
    lines = story_lines(story, mismatches=mismatches)
    at = lines.index("contract mismatches (1):")
    assert lines[at + 1:at + 3] == ["  count: expected 2 calls, got 1 calls",
                                    "      contract: fields.yaml:3:5 (GET /stock)"]


def test_many_mismatches_are_cut_to_a_few_and_the_root_comes_first() -> None:
    xs = _broken_field_under_a_500()
    mismatches = [_mismatch(where=f"/f{i}", xid="top") for i in range(12)]
    mismatches.append(_mismatch(where="/qty", xid="stock"))
    story = first_failure(xs, test=TEST, outcome="failed",
                          contract=failure_details(mismatches))
    lines = story_lines(story, mismatches=mismatches)
    at = lines.index("contract mismatches (13):")
    assert lines[at + 1] == '  #2 response /qty: expected integer, got "3"'
    assert "  … 5 more (tapproxy check lists them all)" in lines
    assert max(map(len, lines)) <= 80


def test_the_passing_tests_summary_counts_shows_a_few_and_the_command() -> None:
    x = _broken_field_under_a_500()[1]
    line = summary_line(_mismatch(xid="stock"), call_label(x))
    assert line == 'gateway → inventory GET /stock: /qty: expected integer, got "3"'
    found = [(f"tests/test_shop.py::test_{i}", line) for i in range(7)]
    lines = passing_summary(found, 9, 7, ["tapproxy", "check", "/tmp/run.tap",
                                          "--contract", "inventory=c.yaml"])
    assert lines[0] == "contract mismatches in passing tests: 9 in 7 tests"
    assert lines[1:3] == ["tests/test_shop.py::test_0",
                          '  gateway → inventory GET /stock: /qty: expected integer, got "3"']
    assert lines[-3:] == ["  … 4 more", "all of them:",
                          "  tapproxy check /tmp/run.tap --contract inventory=c.yaml"]
    assert max(map(len, lines)) <= 80


def test_an_excerpt_is_shown_around_its_marked_line() -> None:
    from tapproxy.report.mismatches import mismatch_lines

    excerpt = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"qty\": \"3\"  ◀\n  \"d\": 4\n}"
    lines = mismatch_lines([_mismatch(excerpt=excerpt)], {"x1": 2})
    assert lines[-3:] == ['      │   "c": 3,', '      │   "qty": "3"  ◀', '      │   "d": 4']
    lines = mismatch_lines([_mismatch(excerpt="{\n  \"qty\": \"3\"  ◀\n}")], {"x1": 2})
    assert lines[-3:] == ["      │ {", '      │   "qty": "3"  ◀', "      │ }"]


def test_a_contract_under_the_working_directory_is_named_relative_to_it(tmp_path) -> None:
    from tapproxy.report.mismatches import mismatch_lines

    m = _mismatch(contract=Location(tmp_path / "contracts" / "c.yaml", 4, 7))
    assert mismatch_lines([m], {"x1": 2}, base=tmp_path)[2] == \
        "      contract: contracts/c.yaml:4:7 (GET /stock)"
    # Elsewhere: the whole path (it is there to be opened), the item cut to make room.
    line = mismatch_lines([m], {"x1": 2}, base=tmp_path / "elsewhere")[2]
    assert line.startswith(f"      contract: {tmp_path}/contracts/c.yaml:4:7"), line


def test_calls_broken_the_same_way_are_one_entry_naming_the_others() -> None:
    ms = [_mismatch(xid=f"x{i}") for i in range(1, 5)] + [_mismatch(where="/sku", xid="x5")]
    lines = mismatch_lines(ms, {f"x{i}": i * 2 for i in range(1, 6)}, base=Path.cwd())
    assert lines[0] == "contract mismatches (5):"
    entries = [line for line in lines if line.startswith("  #")]
    assert entries == ['  #2 (also #4, #6, #8) response /qty: expected integer, got "3"',
                       '  #10 response /sku: expected integer, got "3"']
