"""Properties of the Pact reader and matcher: any file is a contract or one ContractError
(never a traceback), any value matches itself, type rules accept any value of the same
shape, and path expressions and date formats read what they should."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract.pact.contract import load
from tapproxy.contract.pact.formats import matches_datetime
from tapproxy.contract.pact.matchers import match_value
from tapproxy.contract.pact.parts import compare_request, compare_response
from tapproxy.contract.pact.read import read_part
from tapproxy.contract.pact.rules import (
    STAR,
    Category,
    Rule,
    RuleError,
    RuleList,
    parse_path,
    rule_from_json,
)
from tapproxy.contract.pact.walk import Ctx, compare_json
from tapproxy.contract.source import Document, read_document
from tapproxy.errors import ContractError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)

matchers = st.fixed_dictionaries({"match": st.sampled_from([
    "type", "regex", "integer", "decimal", "number", "boolean", "date", "time",
    "timestamp", "null", "include", "values", "eachKey", "eachValue", "arrayContains",
    "notEmpty", "semver", "statusCode", "contentType", "equality", "wobbly"])},
    optional={"regex": st.text(max_size=6), "min": json_values, "max": json_values,
              "value": json_values, "format": json_values, "rules": json_values,
              "variants": json_values, "status": json_values})
rules = st.dictionaries(st.sampled_from(["body", "header", "query", "path", "status",
                                         "$.body.a", "$.headers.x"]),
                        st.one_of(json_values, st.fixed_dictionaries({"matchers": st.lists(
                            matchers, max_size=3)}), st.dictionaries(
                            st.sampled_from(["$", "$.a", "$.a[*]", "x", "$..", "$[0"]),
                            st.fixed_dictionaries({"matchers": st.lists(matchers,
                                                                        max_size=2)}))),
                        max_size=3)
parts = st.fixed_dictionaries({}, optional={
    "method": json_values, "path": json_values, "query": json_values,
    "headers": json_values | st.dictionaries(st.text(max_size=5), json_values),
    "body": json_values | st.fixed_dictionaries({"content": json_values}, optional={
        "contentType": json_values, "encoded": json_values}),
    "status": json_values, "matchingRules": rules})


def _exchange(body: bytes) -> Exchange:
    return Exchange("x", Party("web", "header"), Party("orders", "service-map"),
                    Request("POST", "http", "127.0.0.1", 80, "/a?b=c", "HTTP/1.1",
                            Headers((("Content-Type", "application/json"),)), body),
                    Timing(1), Response(200, "", "HTTP/1.1",
                                        Headers((("Content-Type", "application/json"),)),
                                        body))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.fixed_dictionaries({"description": json_values}, optional={
    "type": st.sampled_from(["Synchronous/HTTP", "Asynchronous/Messages"]) | json_values,
    "request": parts, "response": parts,
    "providerStates": json_values, "pending": json_values}), max_size=3),
    st.sampled_from(["2.0.0", "3.0.0", "4.0", None]), json_values)
def test_any_file_is_a_contract_or_one_contract_error(tmp_path_factory, interactions,
                                                     version, body):
    pact = {"consumer": {"name": "web"}, "provider": {"name": "orders"},
            "interactions": interactions}
    if version:
        pact["metadata"] = {"pactSpecification": {"version": version}}
    path = tmp_path_factory.mktemp("fuzz") / "pact.json"
    path.write_text(json.dumps(pact))
    try:
        contract = load(read_document(path))
    except ContractError as e:
        assert str(e).startswith(str(path))
        return
    contract.items()
    contract.check(_exchange(json.dumps(body).encode()))
    contract.check_run({})


BASE = {"method": "POST", "path": "/a", "query": {"b": ["c"]},
        "headers": {"Content-Type": "application/json"}, "status": 200,
        "body": {"content": {"k": [1, "x"]}, "contentType": "application/json"}}
one_field_off = st.builds(lambda field, value: {**BASE, field: value},
                          st.sampled_from(sorted(BASE)), json_values)
body_off = st.builds(lambda field, value: {**BASE, "body": {**BASE["body"], field: value}},
                     st.sampled_from(["content", "contentType", "encoded"]), json_values)
rules_off = st.builds(lambda r: {**BASE, "matchingRules": r}, rules)


@settings(max_examples=300, deadline=None)
@given(parts | one_field_off | body_off | rules_off,
       parts | one_field_off | body_off | rules_off, st.sampled_from([2, 3, 4]))
def test_any_request_or_response_reads_or_is_one_contract_error(e, a, version):
    doc = Document(Path("pact.json"), e, None)  # the parts as parsed, with no positions
    try:
        expected = (read_part(doc, e, "", version, True), read_part(doc, e, "", version, False))
    except ContractError as err:
        assert str(err).startswith(str(doc.path))
        return
    try:
        actual = (read_part(doc, a, "", version, True), read_part(doc, a, "", version, False))
    except ContractError:
        return
    compare_request(expected[0], actual[0])
    compare_response(expected[1], actual[1])


@given(matchers)
def test_any_matcher_is_a_rule_or_a_rule_error(raw):
    try:
        rule = rule_from_json(raw)
    except RuleError:
        return
    for flavour, value in (("json", raw.get("value")), ("text", "1"), ("status", 200)):
        match_value(rule, value, value, False, flavour)


@given(json_values)
def test_every_value_matches_itself(value):
    for allow_extra in (False, True):
        assert compare_json(("$",), value, value, Ctx(Category("body"), allow_extra)) == []


def _shape(value):
    """A value of the same JSON types, other contents (numbers stay numbers)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return value


@given(json_values)
def test_a_type_rule_at_the_root_accepts_the_same_shape(value):
    rules = Category("body", ((("$",), RuleList((Rule("type"),))),))
    assert compare_json(("$",), value, _shape(value), Ctx(rules, False)) == []


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)


@given(st.lists(st.one_of(names, st.integers(0, 99), st.just("*"), st.just("[*]")),
                max_size=5))
def test_path_expressions(tokens):
    expr = "$" + "".join(f"[{t}]" if isinstance(t, int) else
                         ".*" if t == "*" else t if t == "[*]" else f".{t}"
                         for t in tokens)
    parsed = parse_path(expr)
    assert parsed[0] == "$" and len(parsed) == len(tokens) + 1
    assert parsed[1:] == tuple(str(t) if isinstance(t, int) else STAR if t == "*"
                               else t if t != "[*]" else parsed[tokens.index(t) + 1]
                               for t in tokens)


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_any_iso_timestamp_matches_pacts_default_formats(when):
    assert matches_datetime(when.strftime("%Y-%m-%d"), "yyyy-MM-dd")
    assert matches_datetime(when.strftime("%H:%M:%S"), "HH:mm:ss")
    assert matches_datetime(when.strftime("%Y-%m-%dT%H:%M:%S") + "+02:00",
                            "yyyy-MM-dd'T'HH:mm:ssXXX")
