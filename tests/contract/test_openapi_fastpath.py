"""The msgspec shortcut for JSON bodies only ever accepts what the schema accepts: for
generated schemas (3.0 and 3.1) and JSON texts, a body it takes is valid by the Python
`jsonschema` reference and by the full check; schemas it cannot express exactly get no
shortcut at all. Through `tapproxy check`, a real service's 1000-item bodies recorded
by the real proxy: valid ones pass (also those only the full way takes), each drift is
reported as the full way words it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import orjson
import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from tapproxy.contract.openapi.schema import SchemaSet, convert_document
from tapproxy.contract.openapi.spec import Node, Spec
from tapproxy.contract.source import Document
from tapproxy.supervisor.options import ServiceSpec
from tests.conftest import run_cli

_PATH = Path("/generated/openapi.yaml")
_URI = _PATH.as_uri()
_KEYS = ("a", "b", "c")


def _spec(schemas: dict, version: str) -> Spec:
    doc = {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": {},
           "components": {"schemas": schemas}}
    return Spec(Document(_PATH, doc, None))


def _reference(spec: Spec, direction: str) -> jsonschema.Validator:
    converted = convert_document(spec.data[_URI], direction, spec.is_30)
    draft = DRAFT7 if spec.is_30 else DRAFT202012
    registry = Registry().with_resource(_URI, Resource(converted, specification=draft))
    cls = jsonschema.Draft7Validator if spec.is_30 else jsonschema.Draft202012Validator
    return cls({"$ref": f"{_URI}#/components/schemas/S"}, registry=registry)


def _node(spec: Spec, name: str = "S") -> Node:
    return spec.root.child("components", "schemas", name)  # type: ignore[return-value]


# --- generated schemas, instances shaped after them, JSON texts ------------------------

# 2**70 + 2**17 + 1 rounds up to a double above it; 2**53 + 1 is no double at all.
_bounds = st.one_of(st.sampled_from([0, 1, -2, 3, 2.0]), st.sampled_from([0.5, -1.5, 2.5]),
                    st.sampled_from([2 ** 63, -(2 ** 63) - 1, 2 ** 70 + 2 ** 17 + 1, 1e300,
                                     9007199254740993]))
_TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]


@st.composite
def _leaf(draw) -> dict:
    s: dict = {}
    if draw(st.integers(0, 5)):
        s["type"] = draw(st.one_of(
            st.sampled_from(_TYPES[:5]),
            st.lists(st.sampled_from(_TYPES[:5]), min_size=1, max_size=3, unique=True)))
    for key, strategy, odds in (
            ("minimum", _bounds, 3), ("maximum", _bounds, 3),
            ("exclusiveMinimum", _bounds, 3), ("exclusiveMaximum", _bounds, 3),
            ("minLength", st.integers(0, 2), 3), ("maxLength", st.integers(0, 3), 3),
            ("enum", st.lists(st.one_of(st.integers(-2, 2), st.sampled_from(
                ["a", "é", None, True, 1.5, 2 ** 70])), min_size=1, max_size=3), 4),
            ("const", st.sampled_from([1, "a", None, False]), 9),
            ("format", st.sampled_from(["int32", "int64", "double", "date-time", "email"]),
             6),
            ("nullable", st.booleans(), 3), ("readOnly", st.booleans(), 5),
            ("writeOnly", st.booleans(), 5), ("description", st.just("d"), 5),
            ("x-owner", st.just("me"), 5),
            # what has no msgspec equivalent, now and then
            ("multipleOf", st.sampled_from([2, 0.5]), 15),
            ("pattern", st.sampled_from(["^a", "[0-9]"]), 15)):
        if draw(st.integers(0, odds)) == 0:
            s[key] = draw(strategy)
    return s


def _compound(children):
    obj = st.fixed_dictionaries(
        {"properties": st.dictionaries(st.sampled_from(_KEYS), children, max_size=3)},
        optional={"type": st.sampled_from(["object", ["object", "null"]]),
                  "required": st.lists(st.sampled_from((*_KEYS, "d")), max_size=3,
                                       unique=True),
                  "additionalProperties": st.one_of(st.booleans(), st.booleans(),
                                                    st.booleans(), children),
                  "nullable": st.booleans()})
    bag = st.fixed_dictionaries({"type": st.just("object")},
                                optional={"additionalProperties": children})
    arr = st.fixed_dictionaries({"type": st.just("array")},
                                optional={"items": children, "nullable": st.booleans(),
                                          "minItems": st.integers(0, 2),
                                          "maxItems": st.integers(0, 3),
                                          "uniqueItems": st.just(False)})
    unique = st.builds(lambda c: {"type": "array", "items": c, "uniqueItems": True},
                       children)
    combo = st.builds(lambda k, xs: {k: xs}, st.sampled_from(["allOf", "anyOf", "oneOf"]),
                      st.lists(children, min_size=1, max_size=2))
    ref = st.sampled_from([{"$ref": "#/components/schemas/T"},
                           {"$ref": "#/components/schemas/T"},
                           {"$ref": "#/components/schemas/S"},
                           {"$ref": "#/components/schemas/T", "description": "t"},
                           {"$ref": "#/components/schemas/T", "minimum": 1}])
    rare = st.one_of(combo, unique, st.builds(lambda c: {"not": c}, children))
    common = st.one_of(obj, obj, obj, bag, arr, arr, ref)
    return st.integers(0, 9).flatmap(lambda i: rare if i == 0 else common)


schemas = st.recursive(_leaf(), _compound, max_leaves=8)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e300, 2 ** 63, 2 ** 64, -(2 ** 63) - 1,
                     2 ** 70 + 1, 9007199254740993, 9007199254740992.0]),
    st.sampled_from(["", "a", "ab", "abc", "é", "😀", "7", "2024-01-01T00:00:00Z"]))
_json = st.recursive(_scalars, lambda c: st.one_of(
    st.lists(c, max_size=3), st.dictionaries(st.sampled_from((*_KEYS, "d")), c,
                                              max_size=3)), max_leaves=6)


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _shaped(draw, schema: object, schemas_by_name: dict, depth: int = 0) -> object:
    """A value mostly of the schema's shape, now and then any JSON value instead."""
    if not isinstance(schema, dict) or depth > 4 or draw(st.integers(0, 7)) == 0:
        return draw(_json)
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _shaped(draw, schemas_by_name[name], schemas_by_name, depth + 1)
    for key in ("enum", "const"):
        if key in schema and draw(st.booleans()):
            values = schema[key] if key == "enum" else [schema[key]]
            return draw(st.sampled_from(values)) if isinstance(values, list) \
                and values else None
    t = schema.get("type")
    t = draw(st.sampled_from(t)) if isinstance(t, list) and t else t
    bounds = [schema[k] for k in ("minimum", "maximum", "exclusiveMinimum",
                                  "exclusiveMaximum") if _is_num(schema.get(k))]
    if bounds and draw(st.integers(0, 3)):  # on a bound, just inside or just outside
        near = draw(st.sampled_from(bounds)) + draw(st.sampled_from([0, 1, -1, 0.5, -0.5]))
        if isinstance(near, float) and near.is_integer() and abs(near) < 2 ** 53:
            return int(near) if draw(st.booleans()) else near
        return float(near) if draw(st.integers(0, 3)) == 0 else near
    if t == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        value = {k: _shaped(draw, v, schemas_by_name, depth + 1) for k, v in props.items()
                 if draw(st.integers(0, 4))}
        for k in schema.get("required") or ():
            value.setdefault(k, _shaped(draw, props.get(k), schemas_by_name, depth + 1))
        if draw(st.integers(0, 3)) == 0:
            value["d"] = draw(_json)
        return value
    if t == "array" or "items" in schema:
        return [_shaped(draw, schema.get("items"), schemas_by_name, depth + 1)
                for _ in range(draw(st.integers(0, 3)))]
    if t == "string" or "minLength" in schema or "maxLength" in schema:
        return draw(st.sampled_from(["", "a", "ab", "abc", "é", "😀😀"]))
    if t in ("integer", "number"):
        return draw(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0, -1.5])))
    return draw(_json)


def _text(draw, value: object) -> str:
    """JSON text of `value`, sometimes written as another encoder would: an integer as
    `2.0`, a key escaped or repeated, non-ASCII raw."""
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            key = json.dumps(k)
            if k and draw(st.integers(0, 9)) == 0:
                key = '"' + "".join(f"\\u{ord(ch):04x}" for ch in k) + '"'
            if draw(st.integers(0, 11)) == 0:  # an earlier copy: only the last counts
                parts.append(f"{key}: {_text(draw, draw(_scalars))}")
            parts.append(f"{key}: {_text(draw, v)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(draw, v) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and draw(
            st.integers(0, 9)) == 0:
        return f"{value}.0"
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@st.composite
def cases(draw):
    s, t = draw(schemas), draw(schemas)
    version = draw(st.sampled_from(["3.0.3", "3.1.0"]))
    direction = draw(st.sampled_from(["request", "response"]))
    value = _shaped(draw, s, {"S": s, "T": t})
    return {"S": s, "T": t}, version, direction, _text(draw, value).encode()


_many = settings(max_examples=1500, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _judged(doc: dict, version: str, direction: str, raw: bytes) -> tuple:
    spec = _spec(doc, version)
    try:
        schemas = SchemaSet(spec, direction)
        schemas.validator(_node(spec))
    except Exception:  # a schema jsonschema-rs refuses: not judged at all
        return None, None, None
    accepted = schemas.accepts(_node(spec), raw)
    return spec, schemas, accepted


@pytest.mark.slow
@_many
@given(cases())
@example(({"S": {"type": "object", "properties": {"a": {"type": "integer"}}}, "T": {}},
          "3.1.0", "response", b'{"\\u0061": "x"}'))
@example(({"S": {"type": "object", "properties": {"a": {"type": "integer"}}}, "T": {}},
          "3.1.0", "response", b'{"a": "x", "a": 1}'))
@example(({"S": {"type": "number", "maximum": 2 ** 70}, "T": {}}, "3.1.0", "response",
          str(2 ** 70 + 1).encode()))
@example(({"S": {"type": "integer", "exclusiveMaximum": 2.5}, "T": {}}, "3.1.0",
          "response", b"3"))
@example(({"S": {"type": "integer", "exclusiveMaximum": 3}, "T": {}}, "3.0.3",
          "response", b"3"))
@example(({"S": {"type": "number", "maximum": 2 ** 70 + 2 ** 17 + 1}, "T": {}}, "3.1.0",
          "response", repr(float(2 ** 70 + 2 ** 17 + 1)).encode()))
@example(({"S": {"type": "object", "properties": {"a": {"type": "integer"}},
                 "required": ["b"], "additionalProperties": False}, "T": {}},
          "3.1.0", "response", b'{"b": 1}'))
def test_what_the_shortcut_accepts_is_valid(case) -> None:
    _assert_sound(*case)


@st.composite
def bound_cases(draw):
    s: dict = {}
    t = draw(st.sampled_from([None, "integer", "number", ["integer", "null"],
                              ["number", "string"]]))
    if t is not None:
        s["type"] = t
    keys = draw(st.lists(st.sampled_from(["minimum", "maximum", "exclusiveMinimum",
                                          "exclusiveMaximum"]), min_size=1, max_size=2,
                         unique=True))
    for key in keys:
        s[key] = draw(_bounds)
    if draw(st.integers(0, 3)) == 0:
        s["enum"] = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=3))
    value = _shaped(draw, s, {"S": s})
    return {"S": s}, draw(st.sampled_from(["3.0.3", "3.1.0"])), "response", \
        _text(draw, value).encode()


@pytest.mark.slow
@_many
@given(bound_cases())
@example(({"S": {"type": "integer", "minimum": 0.5}}, "3.1.0", "response", b"0"))
@example(({"S": {"type": "integer", "exclusiveMinimum": 1.5}}, "3.1.0", "response", b"1"))
def test_on_numeric_bounds_too(case) -> None:
    # Bounds alone, so that values on and beside them are many.
    _assert_sound(*case)


def _assert_sound(doc: dict, version: str, direction: str, raw: bytes) -> None:
    spec, schemas, accepted = _judged(doc, version, direction, raw)
    if spec is None:
        return
    event(f"accepted={accepted}, shortcut={schemas._decoders[(_URI, _node(spec).pointer)]
                                           is not None}")
    try:
        value = json.loads(raw)
    except ValueError:
        assert not accepted, raw
        return
    if accepted:
        assert _reference(spec, direction).is_valid(value), (doc, raw)
        # and the full check, as it parses (orjson first), finds nothing either
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = value
        assert schemas.errors(_node(spec), parsed) == [], (doc, raw)


@pytest.mark.parametrize("raw", [
    b'{"name": "x", "extra": "\xff"}',  # msgspec skips an unknown field's UTF-8 unchecked
    b'{"name": "x", "\xff": 1}',
    b'\xef\xbb\xbf{"name": "x"}',  # a BOM: Python's json reads it, msgspec does not
    b'{"name": "x", "extra": 1e400}',
])
def test_bytes_the_shortcut_does_not_vouch_for_go_the_full_way(raw: bytes) -> None:
    spec = _spec({"S": {"type": "object", "properties": {"name": {"type": "string"}}}},
                 "3.1.0")
    schemas = SchemaSet(spec, "response")
    valid_json = raw.startswith(b"\xef") or b"1e400" in raw
    assert schemas.accepts(_node(spec), raw) is False or valid_json
    assert schemas.accepts(_node(spec), b'{"name": "x", "extra": "\xc3\xa9"}') is True


_EXPRESSIBLE = [
    {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                "required": ["id"], "properties": {
                                    "id": {"type": "integer", "format": "int64"},
                                    "name": {"type": "string", "maxLength": 9},
                                    "status": {"enum": ["new", "paid"]}}}},
    {"required": ["code"], "properties": {"code": {"type": "integer", "format": "int32"}}},
    {"type": ["string", "null"], "minLength": 1},
    {"type": "object", "additionalProperties": {"type": "number", "minimum": 0.5}},
    {"$ref": "#/components/schemas/T"},
    {},
]
_NOT_EXPRESSIBLE = [
    {"type": "string", "pattern": "^a"},
    {"type": "string", "format": "date-time"},
    {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    {"type": "array", "uniqueItems": True},
    {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/S"}}},
    {"type": "number", "multipleOf": 2},
    {"type": "object", "minProperties": 1, "properties": {"a": {}}},
    {"type": "integer", "exclusiveMinimum": 2 ** 64},  # beyond msgspec's 64-bit bounds
    {"type": "number", "maximum": 2 ** 70 + 1},  # no double is this bound
]


@pytest.mark.parametrize("schema", _EXPRESSIBLE)
def test_expressible_schemas_get_the_shortcut(schema) -> None:
    spec = _spec({"S": schema, "T": {"type": "integer"}}, "3.1.0")
    schemas = SchemaSet(spec, "response")
    schemas.accepts(_node(spec), b"0")
    assert schemas._decoders[(_URI, "/components/schemas/S")] is not None


@pytest.mark.parametrize("schema", _NOT_EXPRESSIBLE)
def test_schemas_it_cannot_express_exactly_get_none(schema) -> None:
    spec = _spec({"S": schema}, "3.1.0")
    schemas = SchemaSet(spec, "response")
    schemas.accepts(_node(spec), b"0")
    assert schemas._decoders[(_URI, "/components/schemas/S")] is None


# --- through `tapproxy check`: a real service recorded by the real proxy ----------------

_DOC = """openapi: 3.0.3
info: {title: catalog, version: "1"}
paths:
  /items:
    get:
      responses:
        "200":
          description: every item
          content:
            application/json:
              schema:
                type: array
                items: {$ref: "#/components/schemas/Item"}
components:
  schemas:
    Item:
      type: object
      additionalProperties: false
      required: [id, name]
      properties:
        id: {type: integer, format: int64}
        name: {type: string, maxLength: 20}
        qty: {type: integer, minimum: 0}
        price: {type: number, nullable: true}
        status: {type: string, enum: [new, paid, sent]}
"""


def _items(variant: str) -> bytes:
    items = [{"id": i, "name": f"item {i}", "qty": i % 7, "price": i / 4,
              "status": "paid"} for i in range(1000)]
    if variant == "unicode":
        items[3]["name"] = "café ☕ 😀"
        items[4]["price"] = None
    body = json.dumps(items, ensure_ascii=variant != "unicode").encode()
    if variant == "integral-float":  # 7.0 is an integer to JSON Schema, not to msgspec
        body = body.replace(b'"qty": 0,', b'"qty": 0.0,', 1)
    elif variant == "big-id":
        body = body.replace(b'"id": 9,', f'"id": {2 ** 70},'.encode(), 1)
    elif variant == "drift":
        body = body.replace(b'"qty": 3', b'"qty": "3"', 1) \
            .replace(b'"id": 500, "name": "item 500", ', b'"id": 500, ', 1) \
            .replace(b'"status": "paid"}, {"id": 700', b'"status": "lost"}, {"id": 700', 1) \
            .replace(b'{"id": 900,', b'{"id": 900, "discount": 5,', 1)
    return body


def _catalog() -> web.Application:
    async def items(request: web.Request) -> web.Response:
        variant = request.query["variant"]
        body = _items(variant)
        headers = {"Content-Type": "application/json"}
        if variant == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/items", items)
    return app


@pytest.mark.slow
def test_check_on_recorded_1000_item_bodies(start_proxy, services, tmp_path: Path) -> None:
    svc = services.start("catalog", _catalog())
    proxy = start_proxy(services=(ServiceSpec("catalog", "127.0.0.1", svc.port),))
    variants = ["plain", "unicode", "integral-float", "big-id", "gzip", "drift"]
    with requests.Session() as s:
        for variant in variants:
            r = s.get(f"{svc.url}/items?variant={variant}", proxies={"http": proxy.url},
                      timeout=10)
            assert r.status_code == 200
    proxy.records()  # all written
    doc = tmp_path / "catalog.yaml"
    doc.write_text(_DOC)
    r = run_cli("check", proxy.capture, "--contract", f"catalog={doc}", "--format", "json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    calls = {i["id"]: i["calls"] for c in report["coverage"] for i in c["items"]}
    assert calls == {"GET /items": len(variants)}
    got = sorted((m["kind"], m["where"], m["expected"], m["actual"])
                 for m in report["mismatches"])
    assert got == [
        ("body-type", "/3/qty", "integer", "string"),
        ("body-value", "/699/status", 'one of ["new", "paid", "sent"]', '"lost"'),
        ("extra-field", "/900/discount", "no such field", "5"),
        ("missing-field", "/500/name", "present", "absent"),
    ]
    text = run_cli("check", proxy.capture, "--contract", f"catalog={doc}")
    assert text.returncode == 1
    assert "body type or schema: response body /3/qty" in text.stdout
    assert "catalog.yaml:23:21\n" in text.stdout  # the `integer` of the Item's qty
    assert max(map(len, text.stdout.splitlines())) <= 80
