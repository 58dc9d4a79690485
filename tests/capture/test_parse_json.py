"""`parse_json` gives what `json.loads` gives, value for value and type for type, or
refuses what it refuses, whichever parser answers."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture.encoding import parse_json

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6), inner, max_size=4), max_leaves=12)


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b


def _outcome(parse, data: bytes) -> object:
    try:
        return ("value", parse(data))
    except ValueError:
        return ("refused",)


def _check(data: bytes) -> None:
    ours, theirs = _outcome(parse_json, data), _outcome(json.loads, data)
    assert ours[0] == theirs[0]
    if ours[0] == "value":
        assert _same(ours[1], theirs[1])


@given(_VALUES, st.booleans())
def test_any_json_text_parses_to_the_same_values(value, ascii_only) -> None:
    _check(json.dumps(value, ensure_ascii=ascii_only).encode())


@pytest.mark.parametrize("data", [
    b"NaN", b"[Infinity, -Infinity]", b"1e400", b"123456789012345678901234567890",
    b"-0", b"1.0", b'"\\ud800"', b'"\xed\xa0\x80"', b"\xef\xbb\xbf{}",
    '{"a": 1}'.encode("utf-16"), b'{"a": 1, "b": 0, "a": 2}', b"", b"[1,", b'"\xff"',
    b'"\t"', b" [ ] \n", b"{1: 2}", b"01",
])
def test_what_one_parser_alone_takes_is_decided_as_json_loads_decides(data) -> None:
    _check(data)
    _check(data)  # a second time from what was kept
