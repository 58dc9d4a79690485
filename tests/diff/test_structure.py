"""JSON by pointer and text by line: what `diff` reports inside a body."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.diff.model import Change
from tapproxy.diff.structure import json_changes, line_changes


def changes(a, b):
    return [(c.path, c.kind, c.expected, c.actual) for c in json_changes(a, b, "response.body")]


def test_changed_added_removed_and_type_changed_by_pointer() -> None:
    a = {"id": 1, "price": 5, "gone": True, "n": 5, "tags": ["a"]}
    b = {"id": 1, "price": 6, "new": None, "n": "5", "tags": ["a"]}
    assert changes(a, b) == [("/price", "changed", 5, 6), ("/gone", "removed", True, None),
                             ("/n", "type", 5, "5"), ("/new", "added", None, None)]


def test_a_bool_is_not_a_number_and_an_int_equals_its_float() -> None:
    assert changes({"x": 1}, {"x": True}) == [("/x", "type", 1, True)]
    assert changes({"x": 1}, {"x": 1.0}) == []


def test_pointer_tokens_are_escaped_as_rfc_6901_says() -> None:
    assert changes({"a/b": {"m~n": 1}}, {"a/b": {"m~n": 2}}) == [("/a~1b/m~0n", "changed", 1, 2)]


def test_an_item_inserted_at_the_front_is_one_added_item_not_every_item_changed() -> None:
    a = [{"sku": "A"}, {"sku": "B"}, {"sku": "C"}]
    b = [{"sku": "Z"}, {"sku": "A"}, {"sku": "B"}, {"sku": "C"}]
    assert changes(a, b) == [("/0", "added", None, {"sku": "Z"})]
    assert changes(b, a) == [("/0", "removed", {"sku": "Z"}, None)]


def test_arrays_of_one_length_compare_item_by_item() -> None:
    assert changes([{"q": 1}, {"q": 2}], [{"q": 1}, {"q": 3}]) == [("/1/q", "changed", 2, 3)]


def test_text_by_line() -> None:
    got = list(line_changes("a\nb\nc\n", "a\nB\nc\nd\n", "response.body"))
    assert got == [Change("response.body", "line 2", "changed", "b", "B"),
                   Change("response.body", "line 4", "added", None, "d")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=4),
    max_leaves=12)


@given(json_values)
def test_a_value_never_differs_from_itself(v) -> None:
    assert changes(v, v) == []


@given(json_values, json_values)
def test_values_that_differ_show_at_least_one_change(a, b) -> None:
    import json

    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (changes(a, b) == []) == same
