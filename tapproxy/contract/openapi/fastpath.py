"""A shortcut for valid JSON bodies: a schema whose every keyword msgspec enforces
exactly becomes a msgspec type, once, and a body that decodes as that type (parsed and
checked in one C pass, no Python values kept) is valid for the schema too.

The shortcut only ever accepts. A body it refuses, and a schema with any keyword it
does not translate exactly (allOf/anyOf/oneOf/not, pattern, format, const on booleans,
uniqueItems, $ref cycles, ...), goes the full way (orjson + jsonschema-rs), which says
what is wrong. Stricter than JSON Schema is fine here, laxer never: an integer written
`1.0` is refused (msgspec's int) and judged the full way; a duplicate key has every
copy checked where the full way checks the last.

Schemas come already converted (schema.py): 3.0's `nullable` is a type list, its
boolean exclusive bounds are numbers, a hidden readOnly/writeOnly property is `false`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union
from urllib.parse import quote, unquote, urldefrag, urljoin

import msgspec

__all__ = ["body_type", "is_accepted"]

#: Keywords no validator enforces (`nullable` is none in 3.1, and 3.0's is converted
#: away), and OpenAPI's own formats that jsonschema-rs (validate_formats=True) ignores
#: as unknown; `x-` keys are ignored too.
_IGNORED = frozenset({
    "title", "description", "default", "examples", "example", "deprecated", "readOnly",
    "writeOnly", "$comment", "xml", "externalDocs", "discriminator", "contentMediaType",
    "contentEncoding", "nullable"})
_IGNORED_FORMATS = frozenset({"int32", "int64", "float", "double", "byte", "binary",
                              "password"})
_TRANSLATED = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "format", "$ref", "if", "else"})
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


class _Untranslatable(Exception):
    """A keyword or value msgspec cannot enforce exactly."""


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _count(s: dict, key: str) -> int | None:
    v = s.get(key)
    if v is None:
        return None
    if not _is_int(v) or v < 0:
        raise _Untranslatable(key)
    return v


def _int_bounds(s: dict) -> dict:
    """The bounds of `s` as msgspec int bounds, exact for every integer."""
    out: dict[str, int] = {}
    for key, rule in (("minimum", lambda v: ("ge", math.ceil(v))),
                      ("maximum", lambda v: ("le", math.floor(v))),
                      ("exclusiveMinimum", lambda v: ("ge", math.floor(v) + 1)),
                      ("exclusiveMaximum", lambda v: ("le", math.ceil(v) - 1))):
        v = s.get(key)
        if v is None:
            continue
        if not _is_number(v):
            raise _Untranslatable(key)
        name, bound = rule(v)
        # msgspec bounds are 64-bit: a looser bound beyond them may be tightened (a
        # bigger integer is refused, judged the full way), a stricter one not.
        if name == "ge":
            if bound > _INT64[1]:
                raise _Untranslatable(key)
            bound = max(bound, _INT64[0], out.get("ge", _INT64[0]))
        else:
            if bound < _INT64[0]:
                raise _Untranslatable(key)
            bound = min(bound, _INT64[1], out.get("le", _INT64[1]))
        out[name] = bound
    return out


def _float_bounds(s: dict) -> dict:
    """The bounds of `s` as msgspec float bounds, only where a double holds them."""
    out = {}
    for key, name in (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"),
                      ("exclusiveMaximum", "lt")):
        v = s.get(key)
        if v is None:
            continue
        try:
            exact = _is_number(v) and float(v) == v
        except OverflowError:
            exact = False
        if not exact:
            raise _Untranslatable(key)  # rounded to a double, the bound would move
        out[name] = float(v)
    # msgspec takes one bound a side: the tighter (x >= 1 and x > 1 is x > 1)
    for inclusive, exclusive, tighter in (("ge", "gt", max), ("le", "lt", min)):
        if inclusive in out and exclusive in out:
            if tighter(out[inclusive], out[exclusive]) == out[exclusive]:
                del out[inclusive]
            else:
                del out[exclusive]
    return out


def _meta(tp: object, **bounds: object) -> object:
    bounds = {k: v for k, v in bounds.items() if v is not None}
    return Annotated[tp, msgspec.Meta(**bounds)] if bounds else tp


class _Translator:
    """Converted documents by URI, and the Struct types made for their schemas."""

    def __init__(self, documents: dict[str, object]) -> None:
        self.documents = documents
        self.structs = 0

    def at(self, uri: str, pointer: str) -> object:
        value = self.documents.get(uri, _Untranslatable)
        for token in pointer.split("/")[1:] if pointer else ():
            key = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict) and key in value:
                value = value[key]
            else:
                raise _Untranslatable(f"$ref to {uri}#{pointer}")
        if value is _Untranslatable:
            raise _Untranslatable(uri)
        return value

    def schema(self, s: object, uri: str, seen: tuple) -> object:
        if s is True or s == {}:
            return Any
        if not isinstance(s, dict):
            raise _Untranslatable("false schema")
        keys = {k for k in s if k not in _IGNORED and not k.startswith("x-")}
        if keys - _TRANSLATED:
            raise _Untranslatable(", ".join(sorted(keys - _TRANSLATED)))
        if "format" in keys and s["format"] not in _IGNORED_FORMATS:
            raise _Untranslatable("format")
        keys.discard("format")
        if "$ref" in keys:
            return self._ref(s, keys, uri, seen)
        if "if" in keys or "else" in keys:
            # Only the shape a 3.0 `nullable` without `type` became (schema.py).
            if keys != {"if", "else"} or s["if"] != {"type": "null"}:
                raise _Untranslatable("if")
            return Union[None, self.schema(s["else"], uri, seen)]  # noqa: UP007
        types = s.get("type")
        if isinstance(types, str):
            types = [types]
        if types is not None and (not isinstance(types, list) or not types
                                  or any(t not in _TYPES for t in types)):
            raise _Untranslatable("type")
        if "enum" in keys or "const" in keys:
            return self._literal(s, keys, uri, seen)
        if types is None:
            if not keys:
                return Any
            types = _TYPES  # each keyword constrains the values of its own type
        if "number" in types and "integer" in types:
            types = [t for t in types if t != "integer"]
        members = [self._typed(t, s, uri, seen) for t in types]
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007

    def _ref(self, s: dict, keys: set, uri: str, seen: tuple) -> object:
        ref = s["$ref"]
        if keys != {"$ref"} or not isinstance(ref, str):
            raise _Untranslatable("$ref beside other keywords")
        target, fragment = urldefrag(urljoin(uri, ref))
        if fragment and not fragment.startswith("/"):
            raise _Untranslatable("$ref to an anchor")
        place = (target, fragment)
        if place in seen:
            raise _Untranslatable("recursive $ref")
        return self.schema(self.at(target, fragment), target, (*seen, place))

    def _literal(self, s: dict, keys: set, uri: str, seen: tuple) -> object:
        if {"enum", "const"} <= keys:
            raise _Untranslatable("enum and const")
        values = s["enum"] if "enum" in keys else [s["const"]]
        if not isinstance(values, list):
            raise _Untranslatable("enum")
        # The other keywords apply too: keep the values they accept (the shortcut for
        # them only accepts what they accept), so the Literal alone says both.
        rest = msgspec.json.Decoder(self.schema(
            {k: v for k, v in s.items() if k not in ("enum", "const")}, uri, seen))
        kept: list = []
        for v in values:
            try:
                rest.decode(msgspec.json.encode(v))
            except (msgspec.DecodeError, TypeError, OverflowError):
                continue
            if not (isinstance(v, str) or v is None
                    or (_is_int(v) and _INT64[0] <= v <= _INT64[1])):
                # booleans, floats, arrays, objects: no Literal holds them. An integer
                # still matches a body's `1.0` only the full way.
                raise _Untranslatable("enum value")
            kept.append(v)
        if not kept:
            raise _Untranslatable("enum with no value its other keywords allow")
        return Literal[tuple(kept)]  # type: ignore[valid-type]

    def _typed(self, t: str, s: dict, uri: str, seen: tuple) -> object:
        if t == "null":
            return None
        if t == "boolean":
            return bool
        if t == "string":
            return _meta(str, min_length=_count(s, "minLength"),
                         max_length=_count(s, "maxLength"))
        if t == "integer":
            return _meta(int, **_int_bounds(s))
        if t == "number":
            # Integers keep their exact value (a float would round 2**70 + 1).
            return Union[_meta(int, **_int_bounds(s)),  # noqa: UP007
                         _meta(float, **_float_bounds(s))]
        if t == "array":
            if s.get("uniqueItems", False) is not False:
                raise _Untranslatable("uniqueItems")
            items = s.get("items", True)
            if isinstance(items, list):
                raise _Untranslatable("items as a list")
            return _meta(list[self.schema(items, uri, seen)],  # type: ignore[misc]
                         min_length=_count(s, "minItems"), max_length=_count(s, "maxItems"))
        return self._object(s, uri, seen)

    def _object(self, s: dict, uri: str, seen: tuple) -> object:
        props = s.get("properties", {})
        required = s.get("required", [])
        extra = s.get("additionalProperties", True)
        if not isinstance(props, dict) or not isinstance(required, list) \
                or not all(isinstance(n, str) for n in required):
            raise _Untranslatable("properties")
        if not props and not required:
            if extra is False:
                return _meta(dict[str, Any], max_length=0)  # type: ignore[misc]
            return dict[str, self.schema(extra, uri, seen)]  # type: ignore[misc]
        if extra is not True and extra != {} and extra is not False:
            raise _Untranslatable("additionalProperties beside properties")
        closed = extra is False
        fields: list[tuple] = []
        rename: dict[str, str] = {}
        for name in dict.fromkeys([*props, *required]):
            if name not in props:
                if closed:  # required yet never allowed: no value is valid
                    raise _Untranslatable("required field outside properties")
                tp: object = Any
            elif props[name] is False:
                if not closed:  # must be absent: only an unknown field of a closed one
                    raise _Untranslatable("false property")
                if name in required:
                    raise _Untranslatable("false property that is required")
                continue
            else:
                tp = self.schema(props[name], uri, seen)
            field = f"f{len(fields)}"  # any key, also one no identifier could be
            rename[field] = name
            fields.append((field, tp) if name in required
                          else (field, tp, msgspec.UNSET))
        self.structs += 1
        # gc=False: decoded JSON has no cycles, and tracking 1000 objects is a third
        # of the decoding time.
        return msgspec.defstruct(f"Body{self.structs}", fields, kw_only=True,
                                 rename=rename, forbid_unknown_fields=closed, gc=False)


def body_type(documents: dict[str, object], uri: str, pointer: str
              ) -> msgspec.json.Decoder | None:
    """A decoder for the schema at `uri#pointer` of the converted `documents`, or None
    when one of its keywords has no exact msgspec equivalent."""
    translator = _Translator(documents)
    fragment = quote(pointer, safe="/~")  # as a $ref names it, percent-encoded
    try:
        tp = translator.schema(translator.at(uri, fragment), uri, ((uri, fragment),))
        return msgspec.json.Decoder(tp)
    except (_Untranslatable, TypeError, ValueError):
        return None  # TypeError: a union msgspec does not decode (two Struct types)


def is_accepted(decoder: msgspec.json.Decoder, raw: bytes) -> bool:
    """Whether `raw` decodes as the decoder's type (False: judge it the full way)."""
    # msgspec skips an unknown field's value without checking its UTF-8, which the
    # full way would call "not JSON".
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return False
    try:
        decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True
