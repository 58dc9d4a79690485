"""Reading OpenAPI parameters: the query reader equals the standard library's, and
values are coerced to their schema's types as OpenAPI's styles say."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.contract.openapi.params import MISSING, Param, param_value, query_values
from tapproxy.contract.openapi.spec import Node

_NODE = Node("file:///x.yaml", "", {})


@given(st.text(alphabet="ab=&+%20;é", max_size=30))
def test_query_values_equal_parse_qsl(query: str) -> None:
    expected: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        expected.setdefault(k, []).append(v)
    assert query_values(query) == expected


def _param(where: str, types: tuple, style: str, explode: bool, items: tuple = ()) -> Param:
    return Param("p", where, False, style, explode, types, items, None, _NODE)


def test_values_are_read_by_style_and_coerced() -> None:
    assert param_value(_param("query", ("integer",), "form", True), None) is MISSING
    assert param_value(_param("query", ("integer",), "form", True), ["12"]) == 12
    assert param_value(_param("query", ("integer",), "form", True), ["1.5"]) == "1.5"
    assert param_value(_param("query", ("number",), "form", True), ["1.5"]) == 1.5
    assert param_value(_param("query", ("boolean",), "form", True), ["true"]) is True
    arr = ("array",)
    assert param_value(_param("query", arr, "form", True, ("integer",)), ["1", "2"]) == [1, 2]
    assert param_value(_param("query", arr, "form", False, ("integer",)), ["1,2"]) == [1, 2]
    assert param_value(_param("query", arr, "pipeDelimited", False, ("integer",)),
                       ["1|x"]) == [1, "x"]
    assert param_value(_param("query", arr, "spaceDelimited", False), ["a b"]) == ["a", "b"]
    assert param_value(_param("header", arr, "simple", False, ("integer",)), ["3,4"]) == [3, 4]
    assert param_value(_param("path", arr, "label", False), [".a,b"]) == ["a", "b"]
    assert param_value(_param("path", arr, "label", True), [".a.b"]) == ["a", "b"]
    assert param_value(_param("path", ("integer",), "matrix", False), [";p=5"]) == 5
    assert param_value(_param("query", ("string",), "form", True), ["007"]) == "007"
