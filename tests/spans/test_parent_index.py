"""Parent inference over a long test stays linear: a request that has ended is never
looked at again once a later call has started (calls are fed in start order)."""

from __future__ import annotations

from dataclasses import dataclass

from tapproxy.analysis import build_call_tree
from tapproxy.spans.infer import ParentIndex
from tests.spans.build import exchange


@dataclass
class Counted:
    """A request a service was handling, counting how often inference reads its end."""

    exchange_id: str
    start: int
    _end: int | None
    reads: list[int]

    @property
    def end(self) -> int | None:
        self.reads[0] += 1
        return self._end


def test_each_ended_request_is_examined_a_bounded_number_of_times() -> None:
    # The test calls gw 2,000 times, one call at a time; gw calls stock inside each.
    calls = []
    for i in range(2000):
        calls.append(exchange(f"t{i:05d}", "tests", "gw", 10 * i, 10 * i + 8))
        calls.append(exchange(f"g{i:05d}", "gw", "stock", 10 * i + 2, 10 * i + 5))
    reads = [0]
    index: ParentIndex[Counted] = ParentIndex()
    parents = []
    for x in sorted(calls, key=lambda x: (x.timing.request_start, x.id)):
        parent, _, how = index.parent_of(x)
        parents.append((x.id, parent and parent.exchange_id, how))
        index.add(x, Counted(x.id, x.timing.request_start, x.timing.end, reads))
    # Every stock call still finds the gw request it was made in, and only that one.
    assert parents[1::2] == [(f"g{i:05d}", f"t{i:05d}", "timing") for i in range(2000)]
    assert parents[0::2] == [(f"t{i:05d}", None, "root") for i in range(2000)]
    # Linear: a few reads per request, not one per request per later call (~2,000,000).
    assert reads[0] <= 4 * len(calls)


def test_a_request_open_throughout_stays_a_candidate_while_ended_ones_go() -> None:
    long = exchange("long", "tests", "gw", 0, 10_000)
    short = [exchange(f"s{i}", "tests", "gw", 10 * i + 1, 10 * i + 5) for i in range(1, 50)]
    inner = [exchange(f"i{i}", "gw", "db", 10 * i + 2, 10 * i + 3) for i in range(1, 50)]
    late = exchange("late", "gw", "db", 9_000, 9_001)
    tree = build_call_tree([long, *short, *inner, late])
    by_id = {n.exchange.id: n for n in tree.nodes}
    for i in range(1, 50):
        node = by_id[f"i{i}"]
        assert (tree.node(node.parent).exchange.id, node.inference) == (f"s{i}", "ambiguous")
    assert (tree.node(by_id["late"].parent).exchange.id, by_id["late"].inference) == \
        ("long", "timing")
