"""OpenAPI Schema Objects as compiled JSON Schema validators (jsonschema-rs), and their
errors as mismatch kinds with a JSON pointer and the schema keyword's file location.

3.0 schemas are a JSON Schema dialect of their own and are converted first (`nullable`,
boolean `exclusiveMinimum`/`exclusiveMaximum`, `$ref` siblings ignored, `example` and
`x-` keys dropped); 3.1 schemas are JSON Schema 2020-12 as they are. Both directions
honour `readOnly`/`writeOnly`: a read-only property is required (if so declared) and
allowed in responses only, a write-only one in requests only. Every file of the
document is one resource of a registry, so `$ref`s resolve as written and an error's
keyword location is a place in the document's own files.

A JSON body whose schema msgspec can express is first tried by that shortcut
(fastpath.py), which only ever accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, unquote

import jsonschema_rs

from tapproxy.contract.model import Location
from tapproxy.contract.openapi.fastpath import body_type, is_accepted
from tapproxy.contract.openapi.spec import Node, Spec, escape
from tapproxy.contract.own.matchers import json_type  # the one JSON type naming

__all__ = ["SchemaError", "SchemaSet", "convert_30", "convert_document", "json_type"]

#: Annotations of OpenAPI 3.0 that are no JSON Schema keyword (dropped in conversion).
_ANNOTATIONS_30 = frozenset({"example", "nullable", "discriminator", "xml", "externalDocs",
                             "deprecated"})
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions",
                "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if",
               "then", "else", "unevaluatedItems", "unevaluatedProperties",
               "additionalItems", "contentSchema")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_LITERALS = frozenset({"enum", "const", "default", "example", "examples"})
#: What a keyword that failed says about the payload.
_VALUE_KEYWORDS = frozenset({
    "enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
    "multipleOf", "minProperties", "maxProperties"})


def _short(value: object, width: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[:width - 1] + "…"


class _Converter:
    """Schema rewriting for one document file and one direction."""

    def __init__(self, data: object, direction: str, is_30: bool) -> None:
        self.data = data
        self.hidden = "readOnly" if direction == "request" else "writeOnly"
        self.is_30 = is_30

    def _local(self, schema: object) -> object:
        # One hop of a local reference: enough to see a property's readOnly flag.
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        value = self.data
        for token in ref[2:].split("/"):
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if not isinstance(value, dict) or token not in value:
                return schema
            value = value[token]
        return value

    def schema(self, s: object) -> object:
        if not isinstance(s, dict):
            return s
        if self.is_30 and isinstance(s.get("$ref"), str):
            return {"$ref": s["$ref"]}  # 3.0: a Reference Object's siblings are ignored
        if s.get(self.hidden) is True:
            return False  # a readOnly value in a request, a writeOnly one in a response
        out: dict = {}
        for k, v in s.items():
            if self.is_30 and (k in _ANNOTATIONS_30 or k.startswith("x-")):
                continue
            if k in _LITERALS:
                out[k] = v
            elif k in _SCHEMA_MAPS and isinstance(v, dict):
                out[k] = {n: self.schema(x) for n, x in v.items()}
            elif k in _SCHEMA_ONE and isinstance(v, dict):
                out[k] = self.schema(v)
            elif k in _SCHEMA_LISTS and isinstance(v, list):
                out[k] = [self.schema(x) for x in v]
            else:
                out[k] = v
        props, required = s.get("properties"), out.get("required")
        if isinstance(props, dict) and isinstance(required, list):
            out["required"] = [n for n in required if not (
                isinstance(n, str) and isinstance(p := self._local(props.get(n)), dict)
                and p.get(self.hidden) is True)]
        if self.is_30:
            out = self._bounds_30(out)
            if s.get("nullable") is True:
                out = self._nullable_30(out)
        return out

    @staticmethod
    def _bounds_30(out: dict) -> dict:
        for bound, exclusive in (("minimum", "exclusiveMinimum"),
                                 ("maximum", "exclusiveMaximum")):
            flag = out.get(exclusive)
            if flag is True and bound in out:
                out[exclusive] = out.pop(bound)
            elif isinstance(flag, bool):
                del out[exclusive]
        return out

    @staticmethod
    def _nullable_30(out: dict) -> dict:
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
            return out
        if any(k in out for k in ("allOf", "anyOf", "oneOf", "$ref", "enum", "not")):
            # No `type` to widen (3.0.3 would ignore `nullable` here); allowing null as
            # the author evidently meant. `else` keeps the other keywords' own errors.
            return {"if": {"type": "null"}, "else": out}
        return out

    def document(self, v: object, key: str = "") -> object:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "schema":
                    out[k] = self.schema(x)
                elif k == "schemas" and key == "components" and isinstance(x, dict):
                    out[k] = {n: self.schema(s) for n, s in x.items()}
                elif (k in _LITERALS and not (k == "default" and key == "responses")) \
                        or k.startswith("x-"):
                    out[k] = x  # literal data (a `default` response is no literal)
                else:
                    out[k] = self.document(x, k)
            return out
        if isinstance(v, list):
            return [self.document(x) for x in v]
        return v


_SCHEMA_HINTS = frozenset({"type", "properties", "items", "allOf", "anyOf", "oneOf",
                           "$ref", "required", "enum", "additionalProperties"})


def convert_document(data: object, direction: str, is_30: bool) -> object:
    """A document file with its schemas rewritten as JSON Schema for `direction`."""
    conv = _Converter(data, direction, is_30)
    if isinstance(data, dict) and "openapi" not in data and _SCHEMA_HINTS & data.keys():
        return conv.schema(data)  # a file that is one schema, reached by a $ref
    return conv.document(data)


def convert_30(schema: object, direction: str = "response") -> object:
    """One self-contained 3.0 schema as JSON Schema (for tests and the reference)."""
    return _Converter(schema, direction, True).schema(schema)


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One way a value broke a schema, as a mismatch will say it."""

    kind: str  # body-type | missing-field | extra-field | body-value
    where: str  # JSON pointer into the value
    expected: str
    actual: str
    location: Location  # the schema keyword that failed


class SchemaSet:
    """The document's schemas for one direction, each compiled once on first use."""

    def __init__(self, spec: Spec, direction: str) -> None:
        self.spec, self.direction = spec, direction
        resources = [(uri, convert_document(data, direction, spec.is_30))
                     for uri, data in spec.data.items()]
        draft = jsonschema_rs.Draft7 if spec.is_30 else jsonschema_rs.Draft202012
        self._cls = (jsonschema_rs.Draft7Validator if spec.is_30
                     else jsonschema_rs.Draft202012Validator)
        self._registry = jsonschema_rs.Registry(resources, draft=draft)
        self._documents = dict(resources)
        self._compiled: dict[tuple[str, str], object] = {}
        self._decoders: dict[tuple[str, str], object] = {}

    def validator(self, node: Node):
        """The compiled validator of the schema at `node` (cached by its place)."""
        key = (node.uri, node.pointer)
        v = self._compiled.get(key)
        if v is None:
            ref = f"{node.uri}#{quote(node.pointer, safe='/~')}"
            try:
                v = self._cls({"$ref": ref}, registry=self._registry, validate_formats=True)
            except (ValueError, jsonschema_rs.ReferencingError) as e:
                raise self.spec.error(node, "schema cannot be compiled: "
                                            f"{str(e).splitlines()[0][:80]}") from None
            self._compiled[key] = v
        return v

    def accepts(self, node: Node, raw: bytes) -> bool:
        """Whether the JSON text `raw` is valid for the schema at `node` by the msgspec
        shortcut (fastpath.py); False says nothing: judge the parsed value then."""
        key = (node.uri, node.pointer)
        decoder = self._decoders.get(key, False)
        if decoder is False:
            self.validator(node)  # a schema that cannot be compiled is still an error
            decoder = self._decoders[key] = body_type(self._documents, *key)
        return decoder is not None and is_accepted(decoder, raw)  # type: ignore[arg-type]

    def errors(self, node: Node, value: object, limit: int = 20) -> list[SchemaError]:
        """Why `value` breaks the schema at `node` (empty when it does not)."""
        v = self.validator(node)
        if v.is_valid(value):
            return []
        out: list[SchemaError] = []
        for e in v.iter_errors(value):
            out.extend(self._mapped(e, node))
            if len(out) >= limit:
                return out[:limit]
        return out

    def _location(self, e, node: Node) -> Location:
        where = e.absolute_keyword_location
        if where:
            uri, _, fragment = where.partition("#")
            tokens = [unquote(t) for t in fragment.split("/")[1:]]
        else:
            uri, tokens = node.uri, [*node.pointer.split("/")[1:],
                                     *(escape(str(t)) for t in e.schema_path)]
        if self.spec.is_30:
            # `else` is the wrapper `nullable` became, unless it names a property.
            tokens = [t for i, t in enumerate(tokens) if t != "else" or
                      (i and tokens[i - 1] in _SCHEMA_MAPS)]
        pointer = "".join("/" + t for t in tokens)
        if uri not in self.spec.documents:
            uri = node.uri
        return self.spec.location(uri, pointer)

    def _mapped(self, e, node: Node) -> list[SchemaError]:
        kind = e.kind.name
        detail = e.kind.as_dict()
        where = "".join(f"/{escape(str(t))}" for t in e.instance_path)
        loc = self._location(e, node)
        if kind == "required":
            prop = str(detail.get("property", ""))
            return [SchemaError("missing-field", f"{where}/{escape(prop)}",
                                "present", "absent", loc)]
        if kind == "falseSchema":  # a readOnly/writeOnly value on the wrong side
            flag = "readOnly" if self.direction == "request" else "writeOnly"
            return [SchemaError("extra-field", where, f"absent ({flag})",
                                _short(e.instance), loc)]
        if kind in ("additionalProperties", "unevaluatedProperties"):
            names = detail.get("unexpected") or [""]
            inst = e.instance if isinstance(e.instance, dict) else {}
            return [SchemaError("extra-field", f"{where}/{escape(str(n))}",
                                "no such field", _short(inst.get(n)), loc) for n in names]
        if kind == "type":
            types = detail.get("types") or [detail.get("type", "?")]
            order = sorted(map(str, types), key=lambda t: t == "null")
            return [SchemaError("body-type", where, " or ".join(order),
                                json_type(e.instance), loc)]
        actual = _short(e.instance)
        if kind in _VALUE_KEYWORDS:
            if kind == "enum":
                expected = "one of " + _short(detail.get("options"), 60)
            else:
                limit = next(iter(detail.values()), None) if detail else None
                expected = f"{kind} {_short(limit, 50)}" if limit is not None else kind
            return [SchemaError("body-value", where, expected, actual, loc)]
        return [SchemaError("body-type", where, _short(e.message, 60), actual, loc)]
