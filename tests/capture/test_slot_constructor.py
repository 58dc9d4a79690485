"""Records built through their slots are the records their constructor builds."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tapproxy.capture import Party, Timing
from tapproxy.capture.frozen import slot_constructor
from tapproxy.spans.model import Span


def test_a_record_built_through_its_slots_equals_the_constructed_one() -> None:
    assert slot_constructor(Party)("gw", "service", "127.0.0.1:80", 7, "gw --port 80") == \
        Party("gw", "service", "127.0.0.1:80", 7, "gw --port 80")
    assert slot_constructor(Timing)(*range(1, 11)) == Timing(*range(1, 11))
    built = slot_constructor(Span)(1, 2, None, "GET", "client", "gw", 3, 4, {"a": 1},
                                   "unset", "", (), (), True, "x1", {}, "tapproxy")
    assert built == Span(1, 2, None, "GET", "client", "gw", 3, 4, {"a": 1},
                         exchange_id="x1")
    with pytest.raises(AttributeError):  # still frozen
        built.name = "POST"  # type: ignore[misc]


def test_a_class_it_cannot_build_faithfully_is_refused() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a > 0

    for cls in (NoSlots, Checked):
        with pytest.raises(TypeError, match=cls.__name__):
            slot_constructor(cls)
