"""OpenAPI schemas compiled with jsonschema-rs agree with the references: the Python
`jsonschema` library on the same converted schemas, and openapi-schema-validator's OAS
3.0 validators on the unconverted ones (the conversion's own semantics)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from tapproxy.contract.openapi.schema import SchemaSet, convert_30, convert_document
from tapproxy.contract.openapi.spec import Node, Spec
from tapproxy.contract.source import Document

_PATH = Path("/generated/openapi.yaml")
_URI = _PATH.as_uri()
_KEYS = ("a", "b", "c")


def _spec(schemas: dict, version: str = "3.0.3") -> Spec:
    doc = {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": {},
           "components": {"schemas": schemas}}
    return Spec(Document(_PATH, doc, None))


def _reference(spec: Spec, direction: str, name: str) -> jsonschema.Validator:
    converted = convert_document(spec.data[_URI], direction, spec.is_30)
    draft = DRAFT7 if spec.is_30 else DRAFT202012
    registry = Registry().with_resource(_URI, Resource(converted, specification=draft))
    cls = jsonschema.Draft7Validator if spec.is_30 else jsonschema.Draft202012Validator
    return cls({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=registry)


def _node(spec: Spec, name: str) -> Node:
    return spec.root.child("components", "schemas", name)  # type: ignore[return-value]


# --- generated 3.0 schemas and instances ---------------------------------------------

_numbers = st.integers(-3, 3)
_scalar_types = st.sampled_from(["integer", "number", "string", "boolean"])


@st.composite
def _leaf(draw) -> dict:
    s: dict = {"type": draw(_scalar_types)}
    for key, strategy in (("nullable", st.booleans()), ("minimum", _numbers),
                          ("maximum", _numbers), ("exclusiveMinimum", st.booleans()),
                          ("exclusiveMaximum", st.booleans()), ("minLength", st.integers(0, 2)),
                          ("pattern", st.sampled_from(["^a", "b$", "[0-9]"])),
                          ("enum", st.lists(st.one_of(_numbers, st.sampled_from(["a", "b"])),
                                            min_size=1, max_size=3, unique=True)),
                          ("readOnly", st.booleans()), ("writeOnly", st.booleans()),
                          ("example", st.integers()), ("x-owner", st.text(max_size=3))):
        if draw(st.booleans()) and draw(st.booleans()):
            s[key] = draw(strategy)
    return s


def _compound(children):
    obj = st.fixed_dictionaries(
        {"type": st.just("object"),
         "properties": st.dictionaries(st.sampled_from(_KEYS), children, max_size=3)},
        optional={"required": st.lists(st.sampled_from(_KEYS), max_size=2, unique=True),
                  "additionalProperties": st.one_of(st.booleans(), children),
                  "nullable": st.booleans(), "minProperties": st.integers(0, 2)})
    arr = st.fixed_dictionaries({"type": st.just("array"), "items": children},
                                optional={"nullable": st.booleans(),
                                          "minItems": st.integers(0, 2),
                                          "uniqueItems": st.booleans()})
    combo = st.builds(lambda k, xs: {k: xs}, st.sampled_from(["allOf", "anyOf", "oneOf"]),
                      st.lists(children, min_size=1, max_size=3))
    return st.one_of(obj, arr, combo, st.builds(lambda c: {"not": c}, children))


schemas_30 = st.recursive(_leaf(), _compound, max_leaves=6)
instances = st.recursive(
    st.one_of(st.none(), st.booleans(), _numbers, st.sampled_from([0.5, -1.5, 2.0]),
              st.sampled_from(["", "a", "ab", "b", "7", "zz"])),
    lambda c: st.one_of(st.lists(c, max_size=3),
                        st.dictionaries(st.sampled_from((*_KEYS, "d")), c, max_size=3)),
    max_leaves=8)

def _integral_floats(value: object) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, list):
        return any(map(_integral_floats, value))
    return isinstance(value, dict) and any(map(_integral_floats, value.values()))


_many = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_many
@given(schemas_30, instances, st.sampled_from(["request", "response"]))
def test_compiled_30_schemas_agree_with_jsonschema(schema, instance, direction) -> None:
    spec = _spec({"S": schema, "Holder": {"type": "object",
                                          "properties": {"s": {"$ref": "#/components/schemas/S"}}}})
    compiled = SchemaSet(spec, direction)
    for name, value in (("S", instance), ("Holder", {"s": instance})):
        ours = compiled.validator(_node(spec, name)).is_valid(value)
        assert ours == _reference(spec, direction, name).is_valid(value), (name, value)
        # Every invalid verdict comes with at least one mapped error, never none.
        assert bool(compiled.errors(_node(spec, name), value)) == (not ours)


@_many
@given(schemas_30, instances, st.sampled_from(["request", "response"]))
@example({"type": "integer", "minimum": 2, "exclusiveMinimum": True}, 2, "response")
@example({"type": "number", "maximum": 2, "exclusiveMaximum": True}, 1.5, "request")
@example({"type": "object", "required": ["a"],
          "properties": {"a": {"type": "integer", "readOnly": True}}}, {}, "request")
@example({"type": "object", "required": ["a"],
          "properties": {"a": {"type": "integer", "writeOnly": True}}}, {}, "response")
@example({"type": "string", "nullable": True}, None, "response")
def test_30_conversion_agrees_with_openapi_schema_validator(schema, instance,
                                                          direction) -> None:
    # openapi-schema-validator judges OpenAPI 3.0 schemas natively: the conversion must
    # mean what the 3.0 dialect means (nullable, boolean exclusive bounds, readOnly).
    # One known, documented difference: JSON Schema draft 4 (which that validator
    # follows) says 2.0 is no integer, draft 6 on and OpenAPI 3.1 say it is; tapproxy
    # judges 3.0 as 3.1 does here (docs/contracts.md).
    assume(not _integral_floats(instance))
    spec = _spec({"S": schema})
    ours = SchemaSet(spec, direction).validator(_node(spec, "S")).is_valid(instance)
    oracle = OAS30WriteValidator if direction == "request" else OAS30ReadValidator
    assert ours == oracle(schema).is_valid(instance)


json_schemas_2020 = st.recursive(
    st.fixed_dictionaries({"type": st.one_of(
        _scalar_types, st.lists(st.sampled_from(["integer", "string", "null"]), min_size=1,
                                max_size=2, unique=True))},
        optional={"exclusiveMinimum": _numbers, "maximum": _numbers,
                  "const": st.sampled_from([1, "a", None])}),
    lambda c: st.one_of(
        st.fixed_dictionaries({"type": st.just("object"),
                               "properties": st.dictionaries(st.sampled_from(_KEYS), c,
                                                             max_size=3)},
                              optional={"required": st.lists(st.sampled_from(_KEYS),
                                                             max_size=2, unique=True),
                                        "additionalProperties": st.booleans(),
                                        "unevaluatedProperties": st.just(False)}),
        st.fixed_dictionaries({"type": st.just("array"), "prefixItems": st.lists(c, max_size=2)},
                              optional={"items": c})),
    max_leaves=6)


@_many
@given(json_schemas_2020, instances)
def test_compiled_31_schemas_agree_with_jsonschema(schema, instance) -> None:
    spec = _spec({"S": schema}, "3.1.0")
    ours = SchemaSet(spec, "response").validator(_node(spec, "S")).is_valid(instance)
    assert ours == _reference(spec, "response", "S").is_valid(instance)


# --- the conversion, case by case -------------------------------------------------------

def test_nullable_widens_the_type_and_keeps_other_constraints() -> None:
    assert convert_30({"type": "integer", "nullable": True, "example": 3, "x-a": 1}) == \
        {"type": ["integer", "null"]}
    spec = _spec({"S": {"type": "string", "nullable": True, "enum": ["a"]}})
    v = SchemaSet(spec, "response").validator(_node(spec, "S"))
    assert v.is_valid("a") and not v.is_valid("b")
    assert not v.is_valid(None)  # 3.0.3: an enum without null still forbids it


def test_boolean_exclusive_bounds_become_numeric() -> None:
    assert convert_30({"type": "number", "minimum": 1, "exclusiveMinimum": True,
                       "maximum": 5, "exclusiveMaximum": False}) == \
        {"type": "number", "exclusiveMinimum": 1, "maximum": 5}


def test_read_only_fields_are_required_in_responses_only() -> None:
    spec = _spec({"S": {"type": "object", "required": ["id", "pw"], "properties": {
        "id": {"type": "integer", "readOnly": True},
        "pw": {"type": "string", "writeOnly": True}}}})
    request, response = SchemaSet(spec, "request"), SchemaSet(spec, "response")
    assert request.validator(_node(spec, "S")).is_valid({"pw": "x"})
    assert not request.validator(_node(spec, "S")).is_valid({"id": 1})
    assert response.validator(_node(spec, "S")).is_valid({"id": 1})
    assert not response.validator(_node(spec, "S")).is_valid({"pw": "x"})
    # Sent on the wrong side at all, such a field is one the contract forbids there.
    leaked = response.errors(_node(spec, "S"), {"id": 1, "pw": "secret"})
    assert [(e.kind, e.where, e.expected) for e in leaked] == \
        [("extra-field", "/pw", "absent (writeOnly)")]
    sent = request.errors(_node(spec, "S"), {"id": 1, "pw": "x"})
    assert [(e.kind, e.where, e.expected) for e in sent] == \
        [("extra-field", "/id", "absent (readOnly)")]


def test_errors_name_kind_pointer_and_the_failing_keyword() -> None:
    spec = _spec({"S": {"type": "object", "additionalProperties": False,
                        "required": ["id"], "properties": {
                            "id": {"type": "integer"},
                            "state": {"type": "string", "enum": ["new", "paid"]},
                            "qty": {"type": "integer", "minimum": 1}}}})
    errors = SchemaSet(spec, "response").errors(
        _node(spec, "S"), {"state": "lost", "qty": 0, "extra": True})
    got = {(e.kind, e.where, e.expected, e.actual) for e in errors}
    assert got == {("missing-field", "/id", "present", "absent"),
                   ("extra-field", "/extra", "no such field", "true"),
                   ("body-value", "/state", 'one of ["new", "paid"]', '"lost"'),
                   ("body-value", "/qty", "minimum 1", "0")}
    wrong = SchemaSet(spec, "response").errors(_node(spec, "S"), {"id": "7"})
    assert [(e.kind, e.where, e.expected, e.actual) for e in wrong] == \
        [("body-type", "/id", "integer", "string")]
