"""Where a failing run first parts from a passing one (`--baseline`).

Calls are paired by who called what (caller, callee, method, route or path template) and
by how many such calls came before; the first call in time order whose response differs
once noise is masked is the divergence. Noise is `tapproxy.noise`'s: volatile-looking
values (ids, timestamps, tokens) and what each run's repeated identical requests show
to vary, learned from each run on its own so that a drift between the runs stays seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from tapproxy.analysis.calltree import CallTree
from tapproxy.capture.encoding import body_json, body_text
from tapproxy.capture.model import Exchange
from tapproxy.errors import CaptureError
from tapproxy.noise import NoiseModel, route_key

__all__ = ["Divergence", "call_key", "first_divergence"]


def call_key(x: Exchange) -> tuple[str, str, str, str]:
    """What makes two calls the same call: caller, callee, method, route (or path template)."""
    return (x.caller.name, *route_key(x))


def _masked_body(x: Exchange, noise: NoiseModel) -> object:
    assert x.response is not None
    try:
        return noise.mask(body_json(x.response), x)
    except (ValueError, CaptureError):
        pass
    try:
        return noise.mask(body_text(x.response), x)
    except CaptureError:
        return x.response.body_sha256 or x.response.body


def _first_difference(a: object, b: object, where: str = "$") -> str | None:
    """Where two masked JSON values first differ, as a JSON path and both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in b:
                return f"{where}.{k} only in this run"
            if k not in a:
                return f"{where}.{k} only in the baseline"
            d = _first_difference(a[k], b[k], f"{where}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (u, v) in enumerate(zip(a, b, strict=False)):
            d = _first_difference(u, v, f"{where}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return f"{where} has {len(a)} items, baseline {len(b)}"
        return None
    if a == b:
        return None
    show = (lambda v: json.dumps(v)[:40]) if where != "$" or not isinstance(a, str) else (
        lambda v: repr(v[:40]))
    return f"{where}: {show(a)}, baseline {show(b)}"


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first call of this run whose response differs from its baseline counterpart."""

    number: int  # in this run's call tree
    baseline_id: str  # the exchange id in the baseline capture
    what: str  # e.g. "status 500, baseline 200" or "$.price: 3, baseline 4"


def first_divergence(tree: CallTree, baseline: Iterable[Exchange]) -> Divergence | None:
    """The earliest call whose status, error or masked body differs from the baseline's."""
    baseline = sorted(baseline, key=lambda x: (x.timing.request_start, x.id))
    noise = NoiseModel.learn(n.exchange for n in tree.nodes).merged(NoiseModel.learn(baseline))
    counterpart: dict[tuple, list[Exchange]] = {}
    for x in baseline:
        counterpart.setdefault(call_key(x), []).append(x)
    seen: dict[tuple, int] = {}
    for node in tree.nodes:
        x = node.exchange
        key = call_key(x)
        i = seen.get(key, 0)
        seen[key] = i + 1
        pairs = counterpart.get(key, [])
        if i >= len(pairs):
            continue  # a call the baseline never made (a retry, say) has nothing to diverge from
        b = pairs[i]
        what = _compare(x, b, noise)
        if what is not None:
            return Divergence(node.number, b.id, what)
    return None


def _compare(x: Exchange, b: Exchange, noise: NoiseModel) -> str | None:
    mine = x.error.kind if x.error else str(x.status)
    theirs = b.error.kind if b.error else str(b.status)
    if mine != theirs:
        return f"{'error' if x.error else 'status'} {mine}, baseline {theirs}"
    if x.response is None or b.response is None:
        return None
    return _first_difference(_masked_body(x, noise), _masked_body(b, noise))
