"""Drafting an OpenAPI 3.1 document per callee from recorded traffic.

Schemas are inferred with genson from every kept sample (its `required` is the fields
present in every sample, `integer` turns `number` once a sample has a fraction), then
tightened where genson knows too little and loosened where it knows too much: strings
of one volatile kind get their `format` (`uuid`; `date-time` only for RFC 3339 text,
which is what that format means and what jsonschema-rs checks); a field only ever null
may hold anything; no `$schema` is written (OpenAPI's dialect rules).
Path parameters are typed from their values; query parameters are required when every
call had them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from genson import SchemaBuilder
from genson.schema.strategies import String

from tapproxy.contract.draft.traffic import ABSENT, Operation, Sample, Traffic, gather
from tapproxy.noise import value_kind

__all__ = ["draft_openapi", "openapi_from_traffic"]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})",
                      re.ASCII)


def _format(s: str) -> str | None:
    kind = value_kind(s)
    if kind == "uuid":
        return "uuid"
    if kind == "timestamp" and _RFC3339.fullmatch(s):
        return "date-time"
    return None


class _FormattedString(String):
    """genson's string strategy, also noting the one format every string had."""

    def __init__(self, node_class) -> None:
        super().__init__(node_class)
        self._formats: set[str | None] = set()

    def add_object(self, obj) -> None:
        super().add_object(obj)
        self._formats.add(_format(obj))

    def to_schema(self) -> dict:
        schema = super().to_schema()
        if len(self._formats) == 1 and None not in self._formats:
            schema["format"] = next(iter(self._formats))
        return schema


class _Builder(SchemaBuilder):
    EXTRA_STRATEGIES = (_FormattedString,)


def schema_of(values: Iterable[object]) -> dict:
    """A JSON Schema (2020-12, as OpenAPI 3.1 has it) every one of `values` passes."""
    builder = _Builder(schema_uri=None)
    for v in values:
        builder.add_object(v)
    schema = builder.to_schema()
    schema.pop("$schema", None)
    return _unnull(schema)


def _unnull(schema: dict) -> dict:
    """`{type: null}` (a field only ever seen null) as `{}`: what it holds otherwise is
    unknown, and a draft must not fail the first call that fills it in."""
    if schema.get("type") == "null" and len(schema) == 1:
        return {}
    for key in ("properties",):
        if key in schema:
            schema[key] = {k: _unnull(v) for k, v in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _unnull(schema["items"])
    return schema


def _text_schema(texts: list[str]) -> dict:
    if all(re.fullmatch(r"-?\d+", t, re.ASCII) for t in texts):
        return {"type": "integer"}
    formats = {_format(t) for t in texts}
    if len(formats) == 1 and None not in formats:
        return {"type": "string", "format": formats.pop()}
    return {"type": "string"}


def _content(bodies: list[tuple[object, str]]) -> dict:
    by_type: dict[str, list[object]] = {}
    for body, ctype in bodies:
        if ctype:  # a body without a content type has no media type to document it under
            by_type.setdefault(ctype, []).append(body)
    out = {}
    for ctype, values in by_type.items():
        if all(isinstance(v, str) for v in values) and "json" not in ctype:
            out[ctype] = {"schema": {"type": "string"}}
        else:
            out[ctype] = {"schema": schema_of(values)}
    return out


def _operation_id(method: str, template: str, taken: set[str]) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", template) if w]
    ident = method.lower() + "".join(w[:1].upper() + w[1:] for w in words)
    base, n = ident, 2
    while ident in taken:
        ident, n = f"{base}{n}", n + 1
    taken.add(ident)
    return ident


def _parameters(template_params: list[str], samples: list[Sample]) -> list[dict]:
    params = [{"name": p, "in": "path", "required": True,
               "schema": _text_schema([s.params[p] for s in samples if p in s.params])}
              for p in template_params]
    names = dict.fromkeys(k for s in samples for k in s.query)
    for name in names:
        values = [v for s in samples for v in s.query.get(name, ())]
        params.append({"name": name, "in": "query",
                       "required": all(name in s.query for s in samples),
                       "schema": _text_schema(values)})
    return params


def _path_item(ops: list[Operation], taken: set[str]) -> dict:
    op = ops[0]
    every = [(status, s) for o in ops for status, ss in o.responses.items() for s in ss]
    samples = [s for _, s in every]
    out: dict[str, object] = {
        "operationId": _operation_id(op.method, op.template, taken),
        "summary": f"{op.method} {op.template}, called by "
                   f"{', '.join(sorted({o.caller for o in ops}))}",
    }
    parameters = _parameters(op.params, samples)
    if parameters:
        out["parameters"] = parameters
    requests = [(s.request_body, s.request_type) for s in samples
                if s.request_body is not ABSENT]
    content = _content(requests)
    if content:
        out["requestBody"] = {"required": len(requests) == len(samples), "content": content}
    responses: dict[str, object] = {}
    for status in sorted({status for status, _ in every}):
        answers = [(s.response_body, s.response_type) for st, s in every
                   if st == status and s.response_body is not ABSENT]
        response: dict[str, object] = {"description": f"seen {status}"}
        content = _content(answers)
        if content:
            response["content"] = content
        responses[str(status)] = response
    out["responses"] = responses
    return out


def openapi_from_traffic(traffic: Traffic, callee: str, *, source: str = "") -> dict:
    """The OpenAPI 3.1 document (plain data) for the calls to `callee`."""
    grouped: dict[str, dict[str, list[Operation]]] = {}
    for op in traffic.operations:
        if op.callee == callee:
            grouped.setdefault(op.template, {}).setdefault(op.method.lower(), []).append(op)
    taken: set[str] = set()
    paths = {template: {method: _path_item(ops, taken) for method, ops in methods.items()}
             for template, methods in grouped.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": callee, "version": "draft",
                 "description": "Drafted by tapproxy contract draft"
                                f"{' from ' + source if source else ''}: review it."},
        "paths": paths,
    }


def draft_openapi(records: Iterable[object], *, source: str = "") -> dict[str, dict]:
    """An OpenAPI 3.1 document per callee of capture records (ContractError when no
    HTTP exchange)."""
    traffic = gather(records)
    return {c: openapi_from_traffic(traffic, c, source=source) for c in traffic.callees()}
