"""JSON pointers of decoded bodies (walk, escaping) and the --ignore globs over them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapproxy.errors import UsageError
from tapproxy.noise import escape, parse_pointer_glob, unescape, walk
from tapproxy.noise.pointers import leaf_hashes

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.text(alphabet="ab/~*.01", max_size=4), kids, max_size=4),
    max_leaves=20)


def resolve(value: object, pointer: str) -> object:
    """RFC 6901 evaluation, written independently of walk."""
    if pointer == "":
        return value
    for segment in pointer.split("/")[1:]:
        value = value[int(segment)] if isinstance(value, list) else value[unescape(segment)]
    return value


def test_walk_yields_leaves_in_document_order() -> None:
    assert list(walk({"a": [1, {"b/c": None, "~": "x"}], "d": {}, "e": []})) == [
        ("/a/0", 1), ("/a/1/b~1c", None), ("/a/1/~0", "x"), ("/d", {}), ("/e", [])]
    assert list(walk(3)) == [("", 3)]


@given(JSON)
def test_every_pointer_walk_yields_resolves_to_its_leaf(value) -> None:
    found = list(walk(value))
    assert len({p for p, _ in found}) == len(found)
    for pointer, leaf in found:
        assert resolve(value, pointer) == leaf


@given(st.text())
def test_escape_round_trips(key: str) -> None:
    assert "/" not in escape(key)
    assert unescape(escape(key)) == key


@given(JSON)
def test_a_glob_matches_the_pointers_walk_yields(value) -> None:
    everything = parse_pointer_glob("/**")
    for pointer, _ in walk(value):
        if "*" not in pointer:  # a plain pointer is a glob of itself alone
            assert parse_pointer_glob(pointer).matches(pointer)
        stars = "/".join("*" for _ in pointer.split("/"))[1:]
        assert parse_pointer_glob(stars).matches(pointer)
        assert everything.matches(pointer)  # any depth, the root's none included


@pytest.mark.parametrize(("glob", "pointer", "matches"), [
    ("/items/*/updatedAt", "/items/3/updatedAt", True),
    ("/items/*/updatedAt", "/items/3/4/updatedAt", False),  # * is one segment
    ("/items/*/updatedAt", "/items/updatedAt", False),
    ("/**/etag", "/etag", True),  # ** may be no segment at all
    ("/**/etag", "/a/b/c/etag", True),
    ("/**/etag", "/a/etagx", False),
    ("/a.b", "/aXb", False),  # literal, not a regex
    ("/a~1b", "/a~1b", True),
    ("", "", True),
    ("", "/a", False),
    ("/", "/", True),  # the key "" at the root
])
def test_glob_matching(glob, pointer, matches) -> None:
    assert parse_pointer_glob(glob).matches(pointer) is matches


@pytest.mark.parametrize(("bad", "why"), [
    ("items/*/x", "must start with '/'"),
    ("/a~2", "'~' must be followed by 0"),
    ("/items/x*", "whole segments"),
])
def test_a_bad_glob_is_one_usage_error_naming_it(bad, why) -> None:
    with pytest.raises(UsageError, match=why) as e:
        parse_pointer_glob(bad)
    assert repr(bad) in str(e.value)


def own_hash(v: object) -> int:
    """A leaf's hash as learning compares leaves: the type is part of the value."""
    return id(type(v)) if isinstance(v, dict | list) else hash(v) ^ id(type(v))


@given(JSON, st.integers(min_value=0, max_value=25))
def test_leaf_hashes_are_the_first_leaves_walk_yields_hashed(value, limit) -> None:
    assert leaf_hashes(value, limit) == {p: own_hash(v) for p, v in list(walk(value))[:limit]}


def test_leaf_hashes_tell_values_of_another_type_apart() -> None:
    hashes = [leaf_hashes({"a": v}, 10)["/a"] for v in (1, 1.0, True, "1", [], {})]
    assert len(set(hashes)) == 6
