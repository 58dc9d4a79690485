"""Drafting tapproxy's own expectation file (`tapproxy: 1`) from recorded traffic.

One interaction per operation and status (caller, callee, method, path template),
its bodies as matchers: a value every sample shared is required exactly; a value that
varies (between calls, or between repeated identical requests: the noise model) is
required by type, by a regex for UUIDs and timestamps; a field absent from some
samples is `optional`, one sometimes null `nullable`. See `draft_shape` for what
counts as a constant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tapproxy.contract.draft.shape import Shape, shape_of
from tapproxy.contract.draft.traffic import ABSENT, Operation, Sample, Traffic, gather
from tapproxy.noise import NoiseModel

__all__ = ["KIND_PATTERNS", "draft_own", "echoes", "matcher", "own_from_traffic"]

#: A regex for each volatile kind of string a draft names (value_kind's kinds).
KIND_PATTERNS = {
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "timestamp": r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}",  # ISO 8601
    "http-date": r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$",
    "hex-token": r"^[0-9a-fA-F]{16,}$",
}
# Keywords of the own format: a body object with a field named like one is written
# under `fields:` so the loader does not read it as a matcher.
_KEYWORDS = {"exact", "type", "regex", "range", "one-of", "any", "each", "min", "max",
             "fields", "additional", "optional", "nullable", "ignore"}


def echoes(sample: Sample) -> frozenset[str]:
    """The request's own path and query values: a body echoing them is no constant."""
    return frozenset([*sample.params.values(), *(v for vs in sample.query.values()
                                                 for v in vs)])


def _type(types: set[str]) -> str | list[str]:
    if types <= {"integer", "number"} and "number" in types:
        return "number"  # 3 and 2.5 are both numbers
    return next(iter(types)) if len(types) == 1 else sorted(types)


def _with(m: object, *, optional: bool, nullable: bool) -> object:
    """`m` with `optional` / `nullable` beside it (a plain value or object wrapped)."""
    if not (optional or nullable):
        return m
    if not isinstance(m, dict):
        m = {"exact": m}
    elif not set(m) <= _KEYWORDS or not m:
        m = {"fields": m}
    out = dict(m)
    if optional:
        out["optional"] = True
    if nullable:
        out["nullable"] = True
    return out


def _kind(shape: Shape) -> str:
    """The shape's volatile kind, a timestamp told apart as ISO 8601 or an HTTP date."""
    kind = shape.kind or ""
    if kind == "timestamp":
        iso = {str(v)[:1].isdigit() for v in shape.values.values()}
        return "" if len(iso) > 1 else "timestamp" if iso == {True} else "http-date"
    return kind


def matcher(shape: Shape, *, optional: bool = False) -> object:
    """The own-format matcher for what was seen at `shape`."""
    types = shape.types - {"null"}
    nullable = "null" in shape.types and bool(types)
    if not types:  # only ever null: what else it may be is unknown, so any value
        return _with({"any": True}, optional=optional, nullable=False)
    const, value = shape.constant
    if const:
        return _with(value, optional=optional, nullable=nullable)
    if types == {"object"}:
        if not shape.fields:
            m: object = {"type": "object"}
        else:
            fields = {k: matcher(c, optional=shape.optional(c)) for k, c in shape.fields.items()}
            m = {"fields": fields} if set(fields) & _KEYWORDS else fields
    elif types == {"array"}:
        m = {"type": "array"} if shape.items is None else {"each": matcher(shape.items)}
    else:
        m = {"type": _type(types)}
        pattern = KIND_PATTERNS.get(_kind(shape))
        if pattern and types == {"string"}:
            m["regex"] = pattern
    return _with(m, optional=optional, nullable=nullable)


def _body(op: Operation, samples: list[Sample], side: str, noise: NoiseModel) -> object:
    """The body matcher of one side of the samples, or ABSENT when none had a body."""
    bodies = [(s.request_body if side == "request" else s.response_body, echoes(s))
              for s in samples]
    present = [(b, e) for b, e in bodies if b is not ABSENT]
    if not present:
        return ABSENT
    # Noise is learned from responses only: a request's values are the test's own.
    noisy = ((lambda p: False) if side == "request" else
             (lambda p: noise.noise_kind(op.route_key, p) is not None))
    return _with(matcher(shape_of(present, noisy)), optional=len(present) < len(bodies),
                 nullable=False)


def _query(samples: list[Sample]) -> dict[str, object]:
    out: dict[str, object] = {}
    names = dict.fromkeys(k for s in samples for k in s.query)
    for name in names:
        values = [s.query[name] for s in samples if name in s.query]
        if any(len(v) != 1 for v in values):
            m: object = {"any": True}  # a repeated parameter: left to the service
        else:
            texts = [v[0] for v in values]
            ints = all(re.fullmatch(r"-?\d+", t) for t in texts)
            m = {"type": "integer" if ints else "string"}
        out[name] = _with(m, optional=len(values) < len(samples), nullable=False)
    return out


def _content_type(samples: list[Sample]) -> str | None:
    types = {s.response_type for s in samples}
    return types.pop() if len(types) == 1 and "" not in types else None


def _interaction(op: Operation, status: int, samples: list[Sample], ident: str,
                 noise: NoiseModel) -> dict:
    request: dict[str, object] = {"method": op.method, "path": op.template}
    query = _query(samples)
    if query:
        request["query"] = query
    body = _body(op, samples, "request", noise)
    if body is not ABSENT:
        request["body"] = body
    response: dict[str, object] = {"status": status}
    ctype = _content_type(samples)
    if ctype:
        response["headers"] = {"content-type": {"regex": "^" + re.escape(ctype)}}
    body = _body(op, samples, "response", noise)
    if body is not ABSENT:
        response["body"] = body
    return {"id": ident, "caller": op.caller, "callee": op.callee, "request": request,
            "response": response}


def own_from_traffic(traffic: Traffic, *, source: str = "") -> dict:
    """The own-format document (plain data, ready for YAML) for drafted traffic."""
    interactions, ids = [], set()
    callers: dict[tuple[str, str, str], int] = {}
    for op in traffic.operations:
        k = (op.callee, op.method, op.template)
        callers[k] = callers.get(k, 0) + 1
    for op in traffic.operations:
        base = f"{op.callee} {op.method} {op.template}"
        if callers[(op.callee, op.method, op.template)] > 1:
            base += f" from {op.caller}"
        for status in sorted(op.responses):
            ident = base if len(op.responses) == 1 else f"{base} {status}"
            n = 2
            while ident in ids:
                ident, n = f"{ident} #{n}", n + 1
            ids.add(ident)
            interactions.append(_interaction(op, status, op.responses[status], ident,
                                             traffic.noise))
    doc: dict[str, object] = {"tapproxy": 1}
    doc["description"] = (f"Drafted by tapproxy contract draft from {traffic.exchanges} "
                          f"exchanges{' of ' + source if source else ''}: review it, then "
                          "tighten or loosen what matters.")
    doc["interactions"] = interactions
    return doc


def draft_own(records: Iterable[object], *, source: str = "") -> dict:
    """The own-format draft of capture records (ContractError when no HTTP exchange)."""
    return own_from_traffic(gather(records), source=source)
