"""quick_init: the records' constructor makes what dataclasses' own would, faster."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from tapproxy.capture.frozen import quick_init
from tapproxy.capture.model import Exchange, Headers, Party, Request, SessionHeader, Timing


def _made(name: str):
    return dataclasses.make_dataclass(
        name, [("a", str), ("b", int, dataclasses.field(default=3)),
               ("c", list, dataclasses.field(default_factory=list)),
               ("d", Headers | None, dataclasses.field(default=None))],
        frozen=True, slots=True)


_Plain = _made("Plain")
Quick = quick_init(_made("Quick"))


@pytest.mark.parametrize("args, kwargs", [
    (("x",), {}),
    (("x", 4), {}),
    (("x",), {"c": [1], "d": Headers((("k", "v"),))}),
    ((), {"a": "x", "b": 5}),
    (("x", 1, [2], None), {}),
])
def test_same_values_as_dataclasses_own_init(args, kwargs):
    plain, quick = _Plain(*args, **kwargs), Quick(*args, **kwargs)
    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert str(inspect.signature(Quick)) == str(inspect.signature(_Plain))


def test_a_default_factory_gives_each_value_its_own():
    one, two = Quick("x"), Quick("y")
    assert one.c == [] and one.c is not two.c


def test_still_frozen_and_still_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Quick("x").a = "y"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Quick()
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Quick("x", z=1)


def test_records_use_it_and_stay_equal_replaceable_hashable():
    p = Party("web", "service", "127.0.0.1:8000", 42, "node web.js")
    assert Party.__init__.__qualname__ == "Party.__init__"
    assert "_set_name" in Party.__init__.__code__.co_names  # quick_init's, not dataclasses'
    assert p == Party(name="web", source="service", address="127.0.0.1:8000", pid=42,
                      command="node web.js")
    assert hash(p) == hash(dataclasses.replace(p))
    q = Request("GET", "http", "h", 80, "/", "HTTP/1.1")
    assert q.headers == Headers() and q.body == b"" and q.trailers is None
    x = Exchange("id", p, p, q, Timing(1))
    assert dataclasses.replace(x, test="t").test == "t"
    assert SessionHeader(1, 2, 3, "tool").meta == {}
