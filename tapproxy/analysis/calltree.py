"""The call tree of one test's exchanges: who called whom, numbered in time order.

Parentage is the one inference spans use (`tapproxy.spans.infer.ParentIndex`): a call
hangs under the request its caller was handling when it started.

A callee known only by its address (a service nobody named, process names off) hides
which caller it is. When the timing leaves one answer, the address stands for that
caller and its calls nest under the requests to it (`inferred`): every call of the
caller started while a request to that address was open, and no other caller needs
the address. A caller with several such addresses is left unplaced: its calls hang
nowhere (`unplaced`), and the failure story says so instead of guessing.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tapproxy.capture.model import Exchange, Party
from tapproxy.capture.naming import GivenNames
from tapproxy.spans.infer import TEST_SERVICE, ParentIndex
from tapproxy.spans.semconv import server_saw_request

__all__ = ["CallNode", "CallTree", "build_call_tree", "unnamed"]


@dataclass(frozen=True, slots=True)
class CallNode:
    """One exchange in the tree; `number` counts the test's exchanges from 1 by start."""

    number: int
    exchange: Exchange
    parent: int | None  # the parent's number; None: a top-level call
    depth: int
    # how the parent was found: timing | ambiguous | inferred (through an unnamed
    # callee's address) | root | unplaced (its caller may be an unnamed callee)
    inference: str

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
    aliases: dict[str, str] = field(default_factory=dict)  # unnamed address → caller
    # caller → the unnamed addresses it may be (several, or none left to it)
    unplaced: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the calls that may have been made for a request tapproxy did not see: unplaced
    # ones, and those of a service nested under its own request while such a hidden
    # request may have been open; in time order
    unplaced_calls: tuple[int, ...] = ()

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
        return (n.parent is None and n.inference != "unplaced"
                and n.exchange.caller.name not in self.services)

    def could_be_under(self, number: int) -> list[int]:
        """Unplaced calls that started while `number` was open and may have been made
        for it: their caller may be its unnamed callee."""
        if not self.unplaced_calls:
            return []
        x = self.node(number).exchange
        address = x.callee.name
        if address in self.aliases:
            return []
        found = []
        for n in self.unplaced_calls[bisect.bisect_left(self.unplaced_calls, number):]:
            u = self.node(n).exchange  # numbers follow start times: none before `number`
            if u.timing.request_start > x.timing.end:
                break
            if address in self.unplaced[u.caller.name]:
                found.append(n)
        return found


def unnamed(p: Party) -> bool:
    """A callee known only by its IP address (`127.0.0.1`, `127.0.0.1:5002`)."""
    if p.source != "host":
        return False
    host = p.name
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Spans:
    """The time covered by the requests to one address, as merged intervals."""

    def __init__(self, requests: Sequence[Exchange]) -> None:
        merged: list[list[int]] = []
        for start, end in sorted((r.timing.request_start, r.timing.end) for r in requests):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [m[0] for m in merged]
        self._ends = [m[1] for m in merged]

    def cover(self, t: int) -> bool:
        i = bisect.bisect_right(self._starts, t) - 1
        return i >= 0 and t <= self._ends[i]


_Hosts = dict[str, dict[str, "_Spans"]]  # possible host → caller → its requests' time


def _open_hosts(hosts: _Hosts, k: str, t: int) -> set[str]:
    """The possible hosts with a request open at `t`, made by a caller other than `k`."""
    return {a for a, by in hosts.items()
            if any(span.cover(t) for caller, span in by.items() if caller != k)}


def _stand_ins(ordered: Sequence[Exchange]) -> tuple[dict[str, str],
                                                    dict[str, tuple[str, ...]], _Hosts]:
    """(address → the caller it must be, caller → the addresses it may be, unsettled;
    the possible hosts' request times)."""
    # The callees whose own calls may be missing: an address nobody named, or a local
    # process never seen calling (its client may go around the proxy, as Node 20's do).
    callers = {x.caller.name for x in ordered}
    requests: dict[str, list[Exchange]] = {}
    anonymous: set[str] = set()
    for x in ordered:
        if not server_saw_request(x):
            continue
        if unnamed(x.callee):
            anonymous.add(x.callee.name)
        elif (x.callee.name in callers or x.callee.name == TEST_SERVICE
              or x.callee.source not in _LOOKED_UP):
            continue
        requests.setdefault(x.callee.name, []).append(x)
    if not requests:
        return {}, {}, {}
    spans: _Hosts = {}
    for a, rs in requests.items():
        by_caller: dict[str, list[Exchange]] = {}
        for r in rs:
            by_caller.setdefault(r.caller.name, []).append(r)
        spans[a] = {k: _Spans(v) for k, v in by_caller.items()}
    callees = {x.callee.name for x in ordered}
    calls_by: dict[str, list[Exchange]] = {}
    for x in ordered:
        k = x.caller
        if k.source != "peer" and k.name not in callees and k.name != TEST_SERVICE:
            calls_by.setdefault(k.name, []).append(x)
    fits: dict[str, set[str]] = {}
    for k, calls in sorted(calls_by.items()):
        inside: set[str] | None = None
        for c in calls:
            t = c.timing.request_start
            # Requests to the address by others: k's own calls to it hold nothing of k's.
            here = _open_hosts(spans, k, t)
            inside = here if inside is None else inside & here
            if not here:
                break
        else:  # every call of k started while requests to some address were open
            fits[k] = (inside or set()) - {c.callee.name for c in calls}
    aliases: dict[str, str] = {}
    settled = True
    while settled:  # one caller left with one address takes it, then again
        settled = False
        left = {k: fit - aliases.keys() for k, fit in fits.items()
                if k not in aliases.values()}
        # Only an address can stand for a caller: a named service is another process,
        # which may have called it out of sight, but is not it.
        only = [(k, next(iter(fit))) for k, fit in left.items()
                if len(fit) == 1 and fit <= anonymous]
        wanted = [a for _, a in only]
        for k, a in only:
            if wanted.count(a) == 1:  # two callers needing one address: neither is it
                aliases[a] = k
                settled = True
    unplaced = {k: tuple(sorted(fits[k] - aliases.keys()) or sorted(requests))
                for k in fits if k not in aliases.values()}
    return aliases, unplaced, {a: by for a, by in spans.items() if a not in aliases}


# Callees found as a local process: one that never called through tapproxy is known to
# be silent, where a configured name (a map, a listener) may stand for anything.
_LOOKED_UP = ("process", "proxy-user", "service", "rule")


def build_call_tree(exchanges: Iterable[Exchange]) -> CallTree:
    """The tree of exchanges (of one test), ordered by start then id."""
    ordered = sorted(exchanges, key=lambda x: (x.timing.request_start, x.id))
    given = GivenNames((x.caller, x.callee) for x in ordered)  # one name per process
    if given:
        ordered = [given(x) for x in ordered]
    aliases, unplaced, hosts = _stand_ins(ordered)
    unsettled = set(unplaced)  # callers whose every call is unplaced
    callees = {x.callee.name for x in ordered}
    index: ParentIndex[CallNode] = ParentIndex(aliases)
    nodes: list[CallNode] = []
    children: dict[int, list[int]] = {}
    elsewhere: list[int] = []  # calls that may have been made for a hidden request
    for number, x in enumerate(ordered, 1):
        parent, _, how = index.parent_of(x)
        k = x.caller.name
        if parent is not None and parent.exchange.callee.name in aliases:
            how = "inferred"
        elif parent is None and k in unsettled:
            how = "unplaced"
            elsewhere.append(number)
        elif (hosts and k in callees and k != TEST_SERVICE and x.caller.source != "peer"
              and k not in unsettled):
            # A service's call made while a host that may have called it out of sight
            # was handling a request: with no request of its own open here, it is
            # unplaced; nested under one of its own, it may still belong to the hidden one.
            open_now = _open_hosts(hosts, k, x.timing.request_start) - {k}
            if parent is not None:
                open_now.discard(parent.exchange.callee.name)
            if open_now:
                how = "unplaced" if parent is None else how
                elsewhere.append(number)
                unplaced[k] = tuple(sorted(open_now.union(unplaced.get(k, ()))))
        node = CallNode(number, x, parent.number if parent else None,
                        parent.depth + 1 if parent else 0, how)
        nodes.append(node)
        if parent is not None:
            children.setdefault(parent.number, []).append(number)
        index.add(x, node)
    return CallTree(tuple(nodes), {k: tuple(v) for k, v in children.items()},
                    frozenset(callees) | frozenset(aliases.values()),
                    aliases, unplaced, tuple(elsewhere))
