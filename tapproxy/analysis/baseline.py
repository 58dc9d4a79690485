"""Where a failing run first parts from a passing one (`--baseline`).

Calls are paired by who called what (caller, callee, method, route or path shape) and
by how many such calls came before; the first call in time order whose response differs
once volatile values are masked is the divergence. `mask_volatile` is deliberately small
and self-contained: the shared noise model will replace it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tapproxy.analysis.calltree import CallTree
from tapproxy.capture.encoding import body_json, body_text
from tapproxy.capture.model import Exchange
from tapproxy.errors import CaptureError

__all__ = ["Divergence", "call_key", "first_divergence", "mask_volatile", "path_shape"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ISO_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_VOLATILE = re.compile(rf"{_UUID}|{_ISO_TIME}|\b[0-9a-fA-F]{{16,}}\b|\b\d{{10,}}\b")
_SEGMENT_ID = re.compile(rf"{_UUID}|\d+|[0-9a-fA-F]{{16,}}")
_MAYBE_ID = re.compile(r"\d|[0-9a-fA-F]{16}")


def path_shape(path: str) -> str:
    """`/orders/42?x=1` → `/orders/{}`: ids in path segments masked, query dropped."""
    path = path.split("?", 1)[0]
    if not _MAYBE_ID.search(path):  # most paths: nothing to mask, no per-segment work
        return path
    segments = path.split("/")
    return "/".join("{}" if _SEGMENT_ID.fullmatch(s) else s for s in segments)


def call_key(x: Exchange) -> tuple[str, str, str, str]:
    """What makes two calls the same call: caller, callee, method, route (or path shape)."""
    return (x.caller.name, x.callee.name, x.request.method, x.route or path_shape(x.request.path))


def mask_volatile(value: object) -> object:
    """The value with ids, UUIDs and timestamps replaced by `<volatile>` (JSON or text)."""
    if isinstance(value, str):
        return _VOLATILE.sub("<volatile>", value)
    if isinstance(value, dict):
        return {k: mask_volatile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_volatile(v) for v in value]
    return value


def _masked_body(x: Exchange) -> object:
    assert x.response is not None
    try:
        return mask_volatile(body_json(x.response))
    except (ValueError, CaptureError):
        pass
    try:
        return mask_volatile(body_text(x.response))
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
    counterpart: dict[tuple, list[Exchange]] = {}
    for x in sorted(baseline, key=lambda x: (x.timing.request_start, x.id)):
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
        what = _compare(x, b)
        if what is not None:
            return Divergence(node.number, b.id, what)
    return None


def _compare(x: Exchange, b: Exchange) -> str | None:
    mine = x.error.kind if x.error else str(x.status)
    theirs = b.error.kind if b.error else str(b.status)
    if mine != theirs:
        return f"{'error' if x.error else 'status'} {mine}, baseline {theirs}"
    if x.response is None or b.response is None:
        return None
    return _first_difference(_masked_body(x), _masked_body(b))
