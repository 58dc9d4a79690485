"""OpenAPI parameters read from a recorded request as `style` and `explode` say, and
coerced to their schema's types, so their schemas can judge them.

Done here rather than with openapi-core: its request validation cost ~0.5 ms per
exchange here, 25 times the whole budget of a check (see docs/contracts.md). Covered:
path `simple`/`label`/`matrix`, query `form` (explode or not), `spaceDelimited`,
`pipeDelimited`, header `simple`, cookie `form`; `deepObject` and exploded objects are
checked for presence only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from tapproxy.contract.openapi.spec import Node, Spec

__all__ = ["MISSING", "Param", "is_checked", "operation_params", "param_value", "query_values",
           "schema_types"]

MISSING = object()  # the parameter is not in the request
_UNCHECKED = object()  # present, but in a form only its presence is checked in
_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}
_SPLIT = {"spaceDelimited": " ", "pipeDelimited": "|"}
#: Header parameters OpenAPI says to ignore (the transport's own).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


def schema_types(spec: Spec, schema: Node | None) -> tuple[str, ...]:
    """The top-level `type`s of a schema, () when it names none."""
    node = spec.resolve(schema)
    t = node.value.get("type") if node is not None and isinstance(node.value, dict) else None
    if isinstance(t, str):
        return (t,)
    return tuple(x for x in t if isinstance(x, str)) if isinstance(t, list) else ()


@dataclass(frozen=True, slots=True)
class Param:
    """One Parameter Object of an operation, with what reading it needs."""

    name: str
    where: str  # path | query | header | cookie
    required: bool
    style: str
    explode: bool
    types: tuple[str, ...]  # the schema's top-level types, () if it names none
    item_types: tuple[str, ...]  # for arrays: the items' types
    schema: Node | None
    node: Node  # the Parameter Object, for locations


def operation_params(spec: Spec, path_item: Node, op: Node) -> list[Param]:
    """The path item's and the operation's parameters (the operation's win by name+in)."""
    found: dict[tuple[str, str], Node] = {}
    for owner in (path_item, op):
        params = spec.resolve(owner.child("parameters"))
        for _, raw in params.items() if params is not None else ():
            p = spec.resolve(raw)
            if isinstance(p.value, dict) and isinstance(p.value.get("name"), str):
                found[(p.value["name"], str(p.value.get("in")))] = p
    out = []
    for (name, where), p in found.items():
        if where == "header" and name.lower() in _IGNORED_HEADERS:
            continue
        v = p.value
        style = str(v.get("style") or _DEFAULT_STYLE.get(where, "simple"))
        schema = p.child("schema")
        resolved = spec.resolve(schema)
        items = resolved.child("items") if resolved is not None else None
        out.append(Param(
            name, where, bool(v.get("required")) or where == "path", style,
            bool(v.get("explode", style == "form")), schema_types(spec, schema),
            schema_types(spec, items), schema, p))
    return out


def _coerce(text: str, types: tuple[str, ...]) -> object:
    if not types or "string" in types:
        return text
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            f = float(text)
            return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() \
                else f
        except ValueError:
            pass
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    if "null" in types and text in ("", "null"):
        return None
    return text


def query_values(query: str) -> dict[str, list[str]]:
    """The query string's values by name, in order (blank values kept)."""
    out: dict[str, list[str]] = {}
    for part in query.split("&") if query else ():
        if not part:
            continue
        k, _, v = part.partition("=")
        if "%" in part or "+" in part:  # as parse_qsl decodes, without its cost per call
            k, v = unquote_plus(k), unquote_plus(v)
        out.setdefault(k, []).append(v)
    return out


def _array(p: Param, values: list[str]) -> list[object]:
    if p.style in _SPLIT:
        parts = [x for v in values for x in v.split(_SPLIT[p.style])]
    elif p.explode and p.where in ("query", "cookie"):
        parts = values
    else:
        parts = [x for v in values for x in v.split(",")]
    return [_coerce(x, p.item_types) for x in parts]


def param_value(p: Param, values: list[str] | None) -> object:
    """The parameter's value from its raw text(s): MISSING, a value its schema can
    judge, or _UNCHECKED (present in a form checked for presence only)."""
    if values is None:
        return MISSING
    if "object" in p.types or p.style == "deepObject":
        return _UNCHECKED
    if p.where == "path":
        text = values[0]
        if p.style == "label":
            text = text.removeprefix(".")
            values = [text.replace(".", ",") if p.explode else text]
        elif p.style == "matrix":
            values = [text.removeprefix(f";{p.name}=")]
    if "array" in p.types:
        return _array(p, values)
    return _coerce(values[0], p.types)


def is_checked(value: object) -> bool:
    return value is not MISSING and value is not _UNCHECKED
