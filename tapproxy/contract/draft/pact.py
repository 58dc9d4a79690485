"""Drafting Pact v4 files from recorded traffic: one per consumer-provider pair.

A Pact interaction is an example with matching rules. Each operation and status is one
interaction (several when its calls differ in query names or request body structure:
Pact lets no unexpected query parameter or request field match). The example is the
first recorded call; every value that varies (between calls, between repeated identical
requests, or of a volatile kind) gets a `type` rule (a `regex` one for UUIDs and
timestamps), every array a `type` rule with `min: 0` (its items like the first), and
the path a `regex` rule when it has parameters. Response fields that some calls lacked,
or that were sometimes null, are left out of the example: responses may carry more
than the pact says, never less.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from tapproxy.contract.draft.own import echoes
from tapproxy.contract.draft.shape import Shape, shape_of
from tapproxy.contract.draft.traffic import ABSENT, Operation, Sample, Traffic, gather

__all__ = ["draft_pact", "json_text", "pacts_from_traffic"]

# Whole-value regexes (Pact matches a regex against the whole value).
_KIND_REGEX = {
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "timestamp": r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} ).*",
    "hex-token": r"[0-9a-fA-F]{16,}",
}
# What YAML (the contract reader, JSON being YAML) refuses or folds raw: C0/C1
# controls, DEL, NEL (a line break to YAML), lone surrogates. Escaped as \uXXXX they
# read back the same.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TYPE = {"match": "type"}
_TYPE_RULE = {"matchers": [_TYPE]}
_ANY_OF = {"null": {"match": "null"}, "boolean": {"match": "boolean"},
           "number": {"match": "number"}, "string": {"match": "regex", "regex": r"[\s\S]*"}}


def _key(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}['{key}']"


def _types(shape: Shape) -> set[str]:
    """The JSON types seen, integers counted as numbers (Pact's `type` takes 1 for 1.5)."""
    return {"number" if t == "integer" else t for t in shape.types}


def _structural_mix(shape: Shape) -> bool:
    """Several types, an object or array among them: no one example stands for all."""
    types = _types(shape)
    return len(types) > 1 and bool(types & {"object", "array"})


def _uniform(shape: Shape) -> bool:
    """Whether one example stands for every value seen here in a request, where Pact
    allows no unexpected key: one structure, and every object with the same keys."""
    if _structural_mix(shape):
        return False
    if shape.fields and any(shape.optional(c) or not _uniform(c)
                            for c in shape.fields.values()):
        return False
    return shape.items is None or _uniform(shape.items)


def _any_of(types: set[str]) -> dict:
    """A rule accepting each of the scalar `types` (Pact's `type` would hold every value
    to the example's one type)."""
    return {"combine": "OR", "matchers": [_ANY_OF[t] for t in sorted(types)]}


def _rules(shape: Shape, path: str, rules: dict[str, dict], response: bool) -> None:
    """Matching rules for what varies at `shape` (Pact path expression `path`)."""
    types = _types(shape)
    if len(types) > 1:
        rules[path] = _TYPE_RULE if _structural_mix(shape) else _any_of(types)
        return
    if types == {"object"}:
        if not shape.fields:
            rules[path] = _TYPE_RULE  # {} would forbid every field
        for k, child in shape.fields.items():
            if not response or _kept(shape, child):
                _rules(child, _key(path, k), rules, response)
    elif types == {"array"}:
        rules[path] = {"matchers": [{"match": "type", "min": 0}]}
        if shape.items is not None and not _structural_mix(shape.items) and \
                (response or _uniform(shape.items)):
            _rules(shape.items, f"{path}[*]", rules, response)
    elif types and not shape.constant[0]:
        regex = _KIND_REGEX.get(shape.kind or "") if types == {"string"} else None
        rules[path] = {"matchers": [{"match": "regex", "regex": regex}]} if regex \
            else _TYPE_RULE


def _kept(parent: Shape, child: Shape) -> bool:
    """Whether a response field goes in the example: always present, one JSON type,
    never null."""
    return not parent.optional(child) and len(_types(child)) == 1


def _example(shape: Shape, value: object, response: bool) -> object:
    """The example: `value` (the first call's) with one item per array (the model of
    the others; none where items differ in structure, or in a request in their keys)
    and, in a response, without the fields `_kept` leaves out."""
    if isinstance(value, dict) and _types(shape) == {"object"}:
        return {k: _example(shape.fields[k], v, response) for k, v in value.items()
                if not response or _kept(shape, shape.fields[k])}
    if isinstance(value, list) and _types(shape) == {"array"}:
        if shape.items is None or _structural_mix(shape.items) or \
                (not response and not _uniform(shape.items)):
            return []  # with `type` and `min: 0`, an empty example takes any items
        return [_example(shape.items, v, response) for v in value[:1]]
    return value


def _skeleton(v: object) -> object:
    """A request body's structure: what must be alike for one example to stand for all."""
    if isinstance(v, dict):
        return tuple(sorted((k, _skeleton(x)) for k, x in v.items()))
    if isinstance(v, list):  # items are judged by one example or none: not told apart
        return "[]"
    return "text" if isinstance(v, str) else "value" if v is not ABSENT else "absent"


def _body(value: object, ctype: str) -> dict:
    return {"content": value, "contentType": ctype or "application/json", "encoded": False}


def _path_regex(template: str) -> str:
    parts = re.split(r"\{[^{}/]+\}", template)
    return "^" + "[^/]+".join(re.escape(p) for p in parts) + "$"


def _interaction(op: Operation, status: int, samples: list[Sample], noise,
                 description: str) -> dict:
    first = samples[0]
    request: dict[str, object] = {"method": op.method, "path": first.path}
    req_rules: dict[str, object] = {}
    if op.params:
        req_rules["path"] = {"combine": "AND",
                             "matchers": [{"match": "regex", "regex": _path_regex(op.template)}]}
    if first.query:
        request["query"] = first.query
        req_rules["query"] = {k: {"matchers": [_TYPE]} for k in first.query}
    # (Pact reads an empty content as no body, so a JSON "" cannot be an example.)
    if first.request_body is not ABSENT and first.request_body != "":
        rules: dict[str, dict] = {}
        shape = shape_of((s.request_body, echoes(s)) for s in samples)
        _rules(shape, "$", rules, False)  # text too: a rule at `$` judges the whole
        request["body"] = _body(_example(shape, first.request_body, False),
                                first.request_type)
        if rules:
            req_rules["body"] = rules
    if req_rules:
        request["matchingRules"] = req_rules
    response: dict[str, object] = {"status": status}
    resp_rules: dict[str, object] = {}
    types = {s.response_type_header for s in samples}
    if len(types) == 1 and "" not in types:
        ctype = types.pop()
        response["headers"] = {"content-type": [ctype]}
        base = re.escape(ctype.split(";")[0].strip())
        resp_rules["header"] = {"content-type": {
            "matchers": [{"match": "regex", "regex": f"{base}(;.*)?"}]}}
    bodies = [s for s in samples if s.response_body is not ABSENT]
    shape = shape_of(((s.response_body, echoes(s)) for s in bodies),
                     lambda p: noise.noise_kind(op.route_key, p) is not None)
    # A body every call had, of one structure: else no one example stands for them all.
    if len(bodies) == len(samples) and not _structural_mix(shape) \
            and first.response_body != "":
        response["body"] = _body(_example(shape, first.response_body, True),
                                 first.response_type)
        rules = {}
        _rules(shape, "$", rules, True)
        if rules:
            resp_rules["body"] = rules
    if resp_rules:
        response["matchingRules"] = resp_rules
    return {"type": "Synchronous/HTTP", "description": description, "pending": False,
            "request": request, "response": response}


def _groups(samples: list[Sample]) -> list[list[Sample]]:
    out: dict[tuple, list[Sample]] = {}
    for s in samples:
        key = (tuple(sorted(s.query)), _skeleton(s.request_body))
        out.setdefault(key, []).append(s)
    # An interaction without a request body takes any body, and Pact gives a call to the
    # first interaction that takes it: those come last, after the ones that say a body.
    return sorted(out.values(), key=lambda g: g[0].request_body in (ABSENT, ""))


def pact_from_traffic(traffic: Traffic, consumer: str, provider: str) -> dict:
    """The Pact v4 document (plain data) for `consumer`'s calls to `provider`."""
    interactions, seen = [], set()
    for op in traffic.operations:
        if (op.caller, op.callee) != (consumer, provider):
            continue
        for status in sorted(op.responses):
            for group in _groups(op.responses[status]):
                description, n = f"{op.method} {op.template} → {status}", 2
                while description in seen:
                    description, n = f"{op.method} {op.template} → {status} #{n}", n + 1
                seen.add(description)
                interactions.append(_interaction(op, status, group, traffic.noise,
                                                 description))
    return {"consumer": {"name": consumer}, "provider": {"name": provider},
            "interactions": interactions,
            "metadata": {"pactSpecification": {"version": "4.0"},
                         "tapproxy": {"drafted": "tapproxy contract draft"}}}


def pacts_from_traffic(traffic: Traffic) -> dict[tuple[str, str], dict]:
    """A Pact v4 document per (consumer, provider) pair of the traffic."""
    pairs = dict.fromkeys((op.caller, op.callee) for op in traffic.operations)
    return {pair: pact_from_traffic(traffic, *pair) for pair in pairs}


def draft_pact(records: Iterable[object]) -> dict[tuple[str, str], dict]:
    """Pact v4 documents per consumer-provider pair of capture records (ContractError
    when no HTTP exchange)."""
    return pacts_from_traffic(gather(records))


def json_text(doc: object) -> str:
    """`doc` as JSON text that JSON and YAML readers both take: characters as they are
    (an astral character escaped would be a surrogate pair, which YAML refuses), the
    unprintable ones escaped."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"
