"""The call tree of one test's exchanges: who called whom, numbered in time order.

Parentage is the one inference spans use (`tapproxy.spans.infer.ParentIndex`): a call
hangs under the request its caller was handling when it started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tapproxy.capture.model import Exchange
from tapproxy.spans.infer import ParentIndex

__all__ = ["CallNode", "CallTree", "build_call_tree"]


@dataclass(frozen=True, slots=True)
class CallNode:
    """One exchange in the tree; `number` counts the test's exchanges from 1 by start."""

    number: int
    exchange: Exchange
    parent: int | None  # the parent's number; None: a top-level call
    depth: int
    inference: str  # how the parent was found: timing | ambiguous | root

    # What parent inference reads (the Enclosing protocol).
    @property
    def exchange_id(self) -> str:
        return self.exchange.id

    @property
    def start(self) -> int:
        return self.exchange.timing.request_start

    @property
    def end(self) -> int | None:
        return self.exchange.timing.end


@dataclass(frozen=True, slots=True)
class CallTree:
    """Nodes in time order (index = number - 1) with each node's children."""

    nodes: tuple[CallNode, ...]
    children: dict[int, tuple[int, ...]] = field(default_factory=dict)
    services: frozenset[str] = frozenset()  # every callee name: callers that are services

    def node(self, number: int) -> CallNode:
        return self.nodes[number - 1]

    def kids(self, number: int) -> tuple[int, ...]:
        return self.children.get(number, ())

    def ancestors(self, number: int) -> list[int]:
        """Parent, grandparent, … up to a top-level call."""
        out = []
        p = self.node(number).parent
        while p is not None:
            out.append(p)
            p = self.node(p).parent
        return out

    def by_test_client(self, number: int) -> bool:
        """A top-level call made by the test itself, not a service's background call."""
        n = self.node(number)
        return n.parent is None and n.exchange.caller.name not in self.services


def build_call_tree(exchanges: Iterable[Exchange]) -> CallTree:
    """The tree of exchanges (of one test), ordered by start then id."""
    ordered = sorted(exchanges, key=lambda x: (x.timing.request_start, x.id))
    index: ParentIndex[CallNode] = ParentIndex()
    nodes: list[CallNode] = []
    children: dict[int, list[int]] = {}
    for number, x in enumerate(ordered, 1):
        parent, _, how = index.parent_of(x)
        node = CallNode(number, x, parent.number if parent else None,
                        parent.depth + 1 if parent else 0, how)
        nodes.append(node)
        if parent is not None:
            children.setdefault(parent.number, []).append(number)
        index.add(x, node)
    return CallTree(tuple(nodes), {k: tuple(v) for k, v in children.items()},
                    frozenset(x.callee.name for x in ordered))
