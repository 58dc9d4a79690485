"""The first point of failure of one test: the root, why it is the root, what followed.

A call fails by a transport error or 5xx (`Exchange.failed`, the one notion every reader
uses), a contract mismatch (given by the caller of `first_failure`), a latency-budget
overrun, or a 4xx that its caller turned into a failure (or that the test itself got in
a test that did not pass). A failure a later attempt of the same call recovered from
explains nothing. A failure that ran out of time (timeout, the caller gave up, 504,
budget) with no failing call under it descends to the slowest call still open when it
gave up. The root is the earliest unexplained failure whose chain of failing callers
reaches the test (none reaches it: no root); everything else is a consequence with its
reason, or another failure.

Never a confident wrong root: when a failing call that could not be placed in the tree
(its caller may be an unnamed callee, see calltree) may sit below the chosen root or
one of its failing callers, the root is uncertain: the story lists the candidates and
the `--service NAME=HOST:PORT` options that would settle it, and names no root.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tapproxy.analysis.baseline import Divergence, call_key, first_divergence
from tapproxy.analysis.budget import Budget
from tapproxy.analysis.calltree import CallTree, build_call_tree, unnamed
from tapproxy.capture.model import Exchange

__all__ = ["Consequence", "Failure", "FailureStory", "Root", "Uncertain", "first_failure",
           "ms"]

#: Test outcomes under which a 4xx the test itself got counts as a failure.
FAILED_OUTCOMES = ("failed", "error")
_TIME_ERRORS = ("timeout", "client_closed")


def ms(ns: int) -> str:
    return f"{ns / 1e6:.0f} ms" if ns >= 10_000_000 else f"{ns / 1e6:.1f} ms"


@dataclass(frozen=True, slots=True)
class Failure:
    """How one call failed. kind: transport | status | client_status | contract | budget |
    slow (open when its caller gave up); label: short, e.g. `reset`, `502`, `404`."""

    kind: str
    label: str
    detail: str = ""

    @property
    def out_of_time(self) -> bool:
        return self.kind in ("budget", "slow") or self.label in (*_TIME_ERRORS, "504")


@dataclass(frozen=True, slots=True)
class Root:
    number: int
    failure: Failure
    why: str
    attempt: int = 1
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Consequence:
    """A failing call other than the root. role: propagated | retry | same (failed the same
    way as the root) | independent | handled (recovered by a retry) | unrelated |
    unplaced (its caller may be an unnamed callee: where it belongs is unknown) |
    candidate (the root is uncertain: this may be it)."""

    number: int
    role: str
    failure: Failure
    reason: str
    cause: int | None = None  # the failing call this one follows from


@dataclass(frozen=True, slots=True)
class Uncertain:
    """Why no root is named: the calls that may be it, and what would tell them apart."""

    candidates: tuple[int, ...]
    reason: str
    settle: tuple[str, ...]  # `--service NAME=HOST:PORT` options, one of which is true


@dataclass(frozen=True, slots=True)
class FailureStory:
    test: str | None
    outcome: str | None
    tree: CallTree
    failures: Mapping[int, Failure]
    root: Root | None
    consequences: tuple[Consequence, ...]  # propagated, retries, the same failure again
    others: tuple[Consequence, ...]  # independent, handled, unrelated failures
    propagation: str  # "propagated: gateway 502, web 500" (top down), or ""
    divergence: Divergence | None = None
    uncertain: Uncertain | None = None


def _own_failure(x: Exchange, budget: Budget | None, contract: Mapping[str, str]) -> Failure | None:
    if x.error is not None:
        return Failure("transport", x.error.kind, x.error.message)
    if x.failed:  # a 5xx, or whatever else the one notion of failure comes to include
        status = x.status or 0
        return Failure("status", str(status) if status >= 500 else "failed")
    if x.id in contract:
        return Failure("contract", "contract", contract[x.id])
    over = budget.overrun_ns(x) if budget else None
    if over is not None:
        return Failure("budget", "over budget",
                       f"{ms(x.timing.duration_ns)}, budget {ms(x.timing.duration_ns - over)}")
    return None


def _label(tree: CallTree, n: int, failures: Mapping[int, Failure]) -> str:
    x = tree.node(n).exchange
    return f"#{n} {x.caller.name} → {x.callee.name} {failures[n].label}"


class _Analysis:
    def __init__(self, tree: CallTree, outcome: str | None, budget: Budget | None,
                 contract: Mapping[str, str]) -> None:
        self.tree, self.outcome = tree, outcome
        self.failures: dict[int, Failure] = {}
        self.recovered: dict[int, int] = {}  # failing call → the later attempt that passed
        self._attempts: dict[tuple, list[int]] = {}
        for node in tree.nodes:
            self._attempts.setdefault((node.parent, call_key(node.exchange)),
                                      []).append(node.number)
        for node in tree.nodes:  # parents come first: a 4xx sees whether its caller failed
            x, n = node.exchange, node.number
            f = _own_failure(x, budget, contract)
            status = x.status or 0
            if f is None and 400 <= status < 500 and (
                    (node.parent is not None and node.parent in self.failures)
                    or (tree.by_test_client(n) and outcome in FAILED_OUTCOMES)):
                f = Failure("client_status", str(status))
            if f is not None:
                self.failures[n] = f
        self._mark_recovered()
        self._descend_timeouts()

    def attempts(self, n: int) -> list[int]:
        """The attempts of call `n`: same caller, callee, method and route, same parent."""
        node = self.tree.node(n)
        return self._attempts[(node.parent, call_key(node.exchange))]

    def _mark_recovered(self) -> None:
        # Each attempts list once, from its end (scanning it per failure was quadratic).
        for tries in self._attempts.values():
            next_ok = None
            for m in reversed(tries):
                if m not in self.failures:
                    next_ok = m
                elif next_ok is not None:
                    self.recovered[m] = next_ok

    def _explaining_kids(self, n: int) -> list[int]:
        return [k for k in self.tree.kids(n) if k in self.failures and k not in self.recovered]

    def _descend_timeouts(self) -> None:
        todo = [n for n, f in self.failures.items() if f.out_of_time]
        while todo:
            n = todo.pop()
            if self._explaining_kids(n):
                continue
            end = self.tree.node(n).exchange.timing.end
            open_kids = [k for k in self.tree.kids(n)
                         if self.tree.node(k).exchange.timing.end > end and k not in self.failures]
            if not open_kids:
                continue
            slowest = max(open_kids, key=lambda k: self.tree.node(k).exchange.timing.duration_ns)
            gave_up = self.tree.node(n).exchange
            self.failures[slowest] = Failure(
                "slow", "slow",
                f"still open when #{n} {gave_up.caller.name} → {gave_up.callee.name} "
                f"gave up after {ms(gave_up.timing.duration_ns)}; it took "
                f"{ms(self.tree.node(slowest).exchange.timing.duration_ns)}")
            todo.append(slowest)

    def chain(self, n: int) -> list[int]:
        """`n`'s failing callers, nearest first, as far as they fail without break."""
        out = []
        for a in self.tree.ancestors(n):
            if a not in self.failures:
                break
            out.append(a)
        return out

    def reaches_test(self, n: int) -> bool:
        ancestors = self.tree.ancestors(n)
        top = ancestors[-1] if ancestors else n
        return len(self.chain(n)) == len(ancestors) and self.tree.by_test_client(top)

    def candidates(self) -> list[int]:
        return sorted(n for n in self.failures
                      if n not in self.recovered and not self._explaining_kids(n))


def _signature(tree: CallTree, n: int, f: Failure) -> tuple:
    return (*call_key(tree.node(n).exchange)[1:], f.label)


def first_failure(
    exchanges: Iterable[Exchange],
    *,
    test: str | None = None,
    outcome: str | None = None,
    budget: Budget | None = None,
    contract: Mapping[str, str] | None = None,
    baseline: Iterable[Exchange] | None = None,
) -> FailureStory:
    """The failure story of one test's exchanges (pure: no I/O).

    `outcome` is the test's (passed, failed, …); `contract` maps exchange ids to mismatch
    messages (the seam for contract checking); `baseline` is the same test's exchanges
    from a passing run.
    """
    tree = build_call_tree(exchanges)
    a = _Analysis(tree, outcome, budget, contract or {})
    f = a.failures
    candidates = a.candidates()
    reaching = [c for c in candidates if a.reaches_test(c)]
    # Only a failure the test saw can be its root: naming a background call's failure
    # instead would blame a red herring (it is listed among the other failures).
    root_n = reaching[0] if reaching else None
    uncertain = _uncertainty(a, root_n, candidates) if root_n is not None else None
    chosen = root_n
    if uncertain is not None:
        root_n = None

    roles: dict[int, Consequence] = {}

    def assign(n: int, role: str, reason: str, cause: int | None = None) -> None:
        if n not in roles and n != root_n:
            roles[n] = Consequence(n, role, f[n], reason, cause)

    if uncertain is not None and chosen is not None:
        for c in uncertain.candidates:
            assign(c, "candidate", "may be the root: " + (
                "it may have been made under #" + str(chosen)
                if tree.node(c).inference == "unplaced"
                else "a failure made meanwhile may be below it"))
        for c in a.chain(chosen):
            assign(c, "propagated", f"propagated from #{chosen}", chosen)

    root = None
    propagation = ""
    if root_n is not None:
        chain = a.chain(root_n)
        attempts = a.attempts(root_n)
        why = [_root_why(a, root_n)]
        failing_attempts = [m for m in attempts if m in f]
        if len(attempts) > 1:
            why.append(f"attempt {attempts.index(root_n) + 1} of {len(attempts)}"
                       + ("; every attempt failed" if len(failing_attempts) == len(attempts)
                          else ""))
        root = Root(root_n, f[root_n], "; ".join(why), attempts.index(root_n) + 1,
                    len(attempts))
        for c in chain:
            assign(c, "propagated", f"propagated from #{root_n}", root_n)
        if chain:
            propagation = "propagated: " + ", ".join(
                f"{tree.node(c).exchange.callee.name} {f[c].label}" for c in reversed(chain))
        for member in [root_n, *chain]:
            tries = a.attempts(member)
            for i, m in enumerate(tries, 1):
                if m != member and m in f and m > member:
                    assign(m, "retry", f"retry: attempt {i} of {len(tries)} of #{member}"
                           + (", recovered" if m in a.recovered else ""), member)
        same = _signature(tree, root_n, f[root_n])
        for c in candidates:
            if c != root_n and c not in roles and _signature(tree, c, f[c]) == same:
                assign(c, "same", f"failed the same way as the root #{root_n}", root_n)
    for c in candidates:
        if c in roles or c == root_n:
            pass
        elif tree.node(c).inference == "unplaced":
            x = tree.node(c).exchange
            assign(c, "unplaced", f"unplaced: {x.caller.name} may be "
                   + " or ".join(tree.unplaced[x.caller.name])
                   + ", so which request it was made for is unknown")
        elif a.reaches_test(c):
            assign(c, "independent", "independent failure: " + _root_why(a, c))
        else:
            assign(c, "unrelated", "caused no failure the test saw: " + _unrelated_why(a, c))
    independent = sorted(n for n, c in roles.items() if c.role == "independent")
    if root is not None and independent:
        root = dataclasses.replace(root, why=root.why + "; it came before the independent "
                                   f"failure{'s' * (len(independent) > 1)} "
                                   + ", ".join(f"#{n}" for n in independent))
    for n in sorted(a.recovered):
        assign(n, "handled", f"handled: a later attempt, #{a.recovered[n]}, passed")
    # Failing callers above every classified failure share its story. A caller that has
    # a role already had its own callers walked (or will): stop there, so a chain
    # thousands of calls deep is walked once, not once per call.
    for c in sorted(roles):
        up = tree.node(c).parent
        while up is not None and up in f and up not in roles and up != root_n:
            assign(up, "propagated", f"propagated from #{c}", c)
            up = tree.node(up).parent
    for n in sorted(f):
        assign(n, "unrelated", "failed under a call that failed independently")

    ordered = sorted(roles.values(), key=lambda c: c.number)
    consequences = tuple(c for c in ordered if c.role in ("propagated", "retry", "same")
                         and _leads_to(c.number, root_n, roles))
    following = {c.number for c in consequences}  # a set: `in` a tuple was quadratic
    others = tuple(c for c in ordered if c.number not in following)
    divergence = first_divergence(tree, baseline) if baseline is not None else None
    return FailureStory(test, outcome, tree, dict(f), root, consequences, others, propagation,
                        divergence, uncertain)


def _uncertainty(a: _Analysis, root_n: int, candidates: list[int]) -> Uncertain | None:
    """Uncertain if an unplaced failure may sit below the root or a failing caller of it
    (and so be the root itself, or come before it)."""
    tree = a.tree
    hidden: dict[int, list[int]] = {}  # member of the chain → failures that may be below
    for member in [root_n, *a.chain(root_n)]:
        below = [m for m in tree.could_be_under(member) if m in a.failures
                 and (member == root_n or m < root_n)]
        if below:
            hidden[member] = below
    if not hidden:
        return None
    maybe = {m for below in hidden.values() for m in below}
    deepest = [c for c in candidates
               if c in maybe or any(up in maybe for up in tree.ancestors(c))]
    settle = []
    why = []
    for member in hidden:
        x = tree.node(member).exchange
        address = x.callee.name
        callers = [k for k, addresses in tree.unplaced.items() if address in addresses]
        if unnamed(x.callee):
            settle += [f"--service {k}={address}" for k in callers]
            why.append(" or ".join(callers) + f" may be {address}, the callee of #{member}")
        else:  # a named service that never called through tapproxy
            settle += [f"front {k} so that calls to it are recorded (port=, --start)"
                       for k in callers]
            why.append(f"{address} (#{member}) may have called " + " or ".join(callers)
                       + " around tapproxy: no call of its own was recorded")
    reason = ("; ".join(why) + ": calls made meanwhile could not be placed, and a failure "
              "among them may be the root")
    return Uncertain(tuple(sorted({root_n, *deepest})), reason, tuple(dict.fromkeys(settle)))


def _leads_to(n: int, root_n: int | None, roles: Mapping[int, Consequence]) -> bool:
    """Whether following the causes from `n` arrives at the root."""
    seen = set()
    while n in roles and n not in seen:
        seen.add(n)
        cause = roles[n].cause
        if cause is None:
            return False
        n = cause
    return n == root_n


def _root_why(a: _Analysis, n: int) -> str:
    why = _own_why(a, n)
    node = a.tree.node(n)
    if node.inference == "ambiguous" and node.parent is not None:
        px = a.tree.node(node.parent).exchange
        why += (f"; placed under #{node.parent} by timing, but {px.callee.name} was "
                "handling several requests then (ambiguous)")
    return why


def _own_why(a: _Analysis, n: int) -> str:
    f = a.failures[n]
    node = a.tree.node(n)
    parent = node.parent
    if f.kind == "slow":
        return f.detail
    if f.kind == "client_status":
        if parent is not None and parent in a.failures:
            px = a.tree.node(parent).exchange
            return (f"a {f.label} its caller #{parent} {px.caller.name} → {px.callee.name} "
                    f"turned into {a.failures[parent].label}")
        return f"the test got {f.label} and did not pass"
    what = {"transport": f"transport error {f.label}" + (f" ({f.detail})" if f.detail else ""),
            "status": f"status {f.label}",
            "contract": f"contract mismatch: {f.detail}",
            "budget": f"over its latency budget: {f.detail}"}.get(f.kind, f.label)
    kids = a.tree.kids(n)
    unplaced = a.tree.could_be_under(n)
    if unplaced:
        callee = node.exchange.callee
        return (f"{what}; {len(unplaced)} call{'s' * (len(unplaced) > 1)} made meanwhile "
                "could not be placed (" + (f"{callee.name} is unnamed)" if unnamed(callee)
                                           else f"{callee.name} made no call through "
                                           "tapproxy)"))
    if not kids:
        return f"{what}; it made no calls"
    failed_kids = [k for k in kids if k in a.failures]
    if failed_kids:
        return (f"{what}; its failing calls were recovered by retries "
                f"({', '.join(f'#{k}' for k in failed_kids)})")
    return f"{what}; none of its {len(kids)} calls failed"


def _unrelated_why(a: _Analysis, n: int) -> str:
    chain = a.chain(n)
    top = chain[-1] if chain else n
    parent = a.tree.node(top).parent
    if parent is not None:
        px = a.tree.node(parent).exchange
        return f"its caller #{parent} {px.caller.name} → {px.callee.name} got through"
    x = a.tree.node(top).exchange
    if not a.tree.by_test_client(top):
        return f"{x.caller.name} made it on its own, outside any request"
    return "the test went on"
