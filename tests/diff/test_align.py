"""Pairing: the nth exchange of a key in one capture with the nth in the other."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.diff.align import Aligner, align_key
from tapproxy.diff.model import AlignKey
from tests.diff.build import answered

K, L = AlignKey("t", "a", "b", "GET", "/x"), AlignKey("t", "a", "b", "GET", "/y")


def test_the_nth_of_a_key_pairs_with_the_nth_whatever_the_interleaving() -> None:
    al: Aligner[str] = Aligner()
    assert al.add(0, K, "a1") is None
    assert al.add(0, L, "aL") is None
    assert al.add(0, K, "a2") is None
    assert al.add(1, K, "b1") == "a1"
    assert al.add(1, K, "b2") == "a2"
    assert al.add(1, K, "b3") is None  # a third the expected never had
    assert al.add(0, K, "a3") == "b3"
    assert sorted(al.leftovers()) == [(0, L, "aL")]
    assert al.waiting == 1


def test_a_key_whose_sides_are_even_is_forgotten_and_pairs_the_same_way_after() -> None:
    al: Aligner[int] = Aligner()
    for i in range(1000):
        assert al.add(0, K, i) is None
        assert al.add(1, K, -i) == i
    assert al.waiting == 0 and list(al.leftovers()) == []


def test_key_is_test_caller_callee_method_and_route_ids_masked() -> None:
    x = answered("a", path="/orders/42?full=1", caller="shop", callee="orders")
    assert align_key(x) == AlignKey("t::a", "shop", "orders", "GET", "/orders/{id}")
    y = answered("b", path="/orders/42", route="/orders/{order}")
    assert align_key(y).route == "/orders/{order}"  # a route template, where known


@given(st.lists(st.sampled_from("abc"), max_size=30), st.lists(st.sampled_from("abc"),
                                                               max_size=30), st.randoms())
def test_pairs_are_the_nth_with_the_nth_whatever_the_order_of_reading(xs, ys, rnd) -> None:
    """Checked against the definition: per key, occurrence n of one side with n of the
    other; the rest unpaired."""
    keys = {c: AlignKey("t", "a", "b", "GET", c) for c in "abc"}
    items = [(0, c, i) for i, c in enumerate(xs)] + [(1, c, i) for i, c in enumerate(ys)]
    # Any interleaving that keeps each side's own order.
    order, left, right = [], [i for i in items if i[0] == 0], [i for i in items if i[0] == 1]
    while left or right:
        side = left if (left and (not right or rnd.random() < 0.5)) else right
        order.append(side.pop(0))
    al: Aligner[tuple] = Aligner()
    pairs = set()
    for side, c, i in order:
        other = al.add(side, keys[c], (side, c, i))
        if other is not None:
            a, b = (other, (side, c, i)) if side == 1 else ((side, c, i), other)
            pairs.add((a[2], b[2]))
    expected = set()
    for c in "abc":
        pa = [i for i, k in enumerate(xs) if k == c]
        pb = [i for i, k in enumerate(ys) if k == c]
        expected |= set(zip(pa, pb, strict=False))
    assert pairs == expected
    assert al.waiting == len(xs) + len(ys) - 2 * len(expected)
