"""Pairing two streams of exchanges: the nth exchange of a key in one capture with the
nth of the same key in the other, as both are read (no capture is held in memory).

The key is the test, caller, callee, method and route (the route template, else the
path with its ids masked): the 3rd `GET /orders/{id}` that `shop` sent in a test pairs
with the 3rd. Only exchanges still waiting for their counterpart are kept; a key whose
two sides are even is forgotten, which pairs the rest the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from tapproxy.capture.model import Exchange, Tunnel
from tapproxy.diff.model import AlignKey
from tapproxy.noise import route_key
from tapproxy.report.parties import callee_with_port, party_name

__all__ = ["Aligner", "align_key", "tunnel_key"]


def align_key(x: Exchange) -> AlignKey:
    """The key `x` pairs by; parties named as every output names them."""
    callee = callee_with_port(x).callee.name
    return AlignKey(x.test, party_name(x.caller), callee, x.request.method, route_key(x)[2])


def tunnel_key(t: Tunnel) -> AlignKey:
    """A tunnel pairs by test, caller and server."""
    callee = t.callee.address if t.callee.source == "host" and t.callee.address else \
        t.callee.name
    return AlignKey(t.test, party_name(t.caller), callee, "TUNNEL", "")


class Aligner[T]:
    """Items of two sides (0: expected, 1: actual) paired by key in arrival order."""

    def __init__(self) -> None:
        # Per key, the side whose items wait and those items, oldest first: at most one
        # side of a key ever waits (an item of the other side takes the oldest).
        self._waiting: dict[AlignKey, tuple[int, deque[T]]] = {}
        self.waiting = 0  # how many items wait, both sides

    def add(self, side: int, key: AlignKey, item: T) -> T | None:
        """The other side's item `item` pairs with, or None (it waits for its own)."""
        entry = self._waiting.get(key)
        if entry is None:
            self._waiting[key] = (side, deque((item,)))
            self.waiting += 1
            return None
        owner, queue = entry
        if owner == side:
            queue.append(item)
            self.waiting += 1
            return None
        other = queue.popleft()
        self.waiting -= 1
        if not queue:
            del self._waiting[key]  # even: later items of this key pair the same way
        return other

    def leftovers(self) -> Iterator[tuple[int, AlignKey, T]]:
        """Items that found no counterpart: side 0's were removed, side 1's added."""
        for key, (side, queue) in self._waiting.items():
            for item in queue:
                yield side, key, item
