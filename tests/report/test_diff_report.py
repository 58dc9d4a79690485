"""`tapproxy diff` text: 80 columns whatever the values, recorded text escaped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.diff.model import AlignKey, Change, PairDiff, Side, Summary, Unpaired
from tapproxy.report.diff import DiffText, item_json, summary_lines

KEY = AlignKey("tests/test_shop.py::test_checkout", "shop", "orders", "GET", "/orders/{id}")
SIDE = Side("3", "abc", "200", 5_000_000)


def lines_of(*changes: Change, key: AlignKey = KEY) -> list[str]:
    return DiffText("a.tap", "b.tap").lines(PairDiff(key, SIDE, SIDE, changes, 2))


def test_expected_beside_actual_and_noise_counted() -> None:
    assert lines_of(Change("response.body", "/price", "changed", 5, 6),
                    Change("response.body", "/n", "type", 5, "5")) == [
        "test tests/test_shop.py::test_checkout",
        "≠ #3 ↔ #3  shop → orders  GET /orders/{id}",
        f"    {'':<26} {'expected':<24} actual",
        f"    {'body /price':<26} {'5':<24} 6",
        f"    {'body /n':<26} {'5 (number)':<24} \"5\" (string)",
        "    ignored as noise: 2 fields"]


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@given(text, text, text, text)
def test_every_line_fits_80_columns_and_controls_are_escaped(path, exp, act, test) -> None:
    key = AlignKey(test, "shop", "orders", "GET", path)
    out = lines_of(Change("response.body", path, "changed", exp, act),
                   Change("response.header", path, "added", None, act), key=key)
    out += DiffText("a", "b").lines(Unpaired("added", key, SIDE))
    assert all(len(line) <= 80 for line in out), out
    assert not any(c in line for line in out for c in "\x1b\x07\r")


def test_summary_counts_and_learned_noise() -> None:
    s = Summary(pairs=10, differing=2, added=1, removed=0, noise_fields=7,
                learned=[("orders GET /health", "/uptime")])
    assert summary_lines(s) == [
        "2 of 10 paired exchanges differ, 0 removed, 1 added; ignored as noise: 7 fields",
        "learned noise (route, field):", "  orders GET /health  /uptime"]
    assert summary_lines(Summary(pairs=3))[0] == (
        "no differences: 3 paired exchanges equal; ignored as noise: 0 fields")


def test_json_items_keep_values_as_json() -> None:
    pair = PairDiff(KEY, SIDE, SIDE, (Change("response.body", "/items/1", "added", None,
                                             {"sku": "A"}),), 0)
    d = item_json(pair)
    assert d["kind"] == "differs" and d["expected"]["duration_ms"] == 5.0
    assert d["changes"] == [{"part": "response.body", "path": "/items/1", "kind": "added",
                             "actual": {"sku": "A"}}]


def test_a_pair_with_many_changes_shows_the_first_40_and_says_how_many_more() -> None:
    changes = [Change("response.body", f"/items/{i}", "changed", i, i + 1) for i in range(100)]
    out = lines_of(*changes)
    assert sum(line.strip().startswith("body /items/") for line in out) == 40
    assert "    … and 60 more (--format json lists every one)" in out


def test_websocket_messages_and_close() -> None:
    """A text message, a line of one and a binary one's description as they are; a
    JSON message's values as JSON; a close that never came as (none)."""
    out = lines_of(Change("response.messages", "/0", "changed", "hello", "hi"),
                   Change("response.messages", "/1 line 2", "changed", "ok", "slow"),
                   Change("response.messages", "/2", "changed", "2 bytes", "3 bytes"),
                   Change("response.messages", "/3/sku", "changed", "A", "B"),
                   Change("request.messages", "/0", "removed", {"op": "x"}, None),
                   Change("close", "", "changed", 4000, None),
                   Change("close", "reason", "changed", "done", "bye"))
    assert out[3:10] == [
        f"    {'msg /0':<26} {'hello':<24} hi",
        f"    {'msg /1 line 2':<26} {'ok':<24} slow",
        f"    {'msg /2':<26} {'2 bytes':<24} 3 bytes",
        f"    {'msg /3/sku':<26} {'\"A\"':<24} \"B\"",
        f"    {'req msg /0':<26} {'{\"op\":\"x\"}':<24} (absent)",
        f"    {'close':<26} {'4000':<24} (none)",
        f"    {'close reason':<26} {'done':<24} bye"]
