"""`tapproxy check`'s terminal report: grouped by test and call, repeats named, 80 columns."""

from __future__ import annotations

from pathlib import Path

from tapproxy.contract.check import CheckResult
from tapproxy.contract.model import Location, Mismatch
from tapproxy.report.contract import check_lines

_AT = Location(Path("c.yaml"), 4, 7)


def _m(xid: str, where: str = "/qty", test: str = "t::a") -> Mismatch:
    return Mismatch("body-type", "qty", _AT, "item", where, "response", "integer",
                    'string "3"', xid, test, "web", "inventory")


def test_calls_broken_the_same_way_are_told_once_and_named() -> None:
    ids = [f"{i:08x}{'0' * 24}" for i in range(1, 16)]
    result = CheckResult([], [_m(i) for i in ids] + [_m("f" * 32, where="/sku"),
                                                     _m("e" * 32, test="t::b")])
    lines = check_lines(result, "run.tap", base=Path.cwd())
    assert all(len(line) <= 80 for line in lines)
    assert sum("✗" in line for line in lines) == 3  # /qty once per test, /sku once
    same = [i for i, line in enumerate(lines) if "the same on" in line]
    assert len(same) == 1
    assert lines[same[0]].startswith("    the same on 14 more calls: 00000002 00000003")
    assert lines[same[0] + 1].strip().endswith("… 2 more")
