"""Contract drafts from traffic, pure: templates, matchers, and the round trip.

Each draft (own format, OpenAPI 3.1, Pact v4) is loaded by the real loader and checked
by `check_records` against the records it came from, against a second run of the same
calls (new ids, UUIDs and timestamps), and against runs with a real drift.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract.check import check_records
from tapproxy.contract.draft.openapi import draft_openapi, schema_of
from tapproxy.contract.draft.own import draft_own
from tapproxy.contract.draft.pact import draft_pact, json_text
from tapproxy.contract.draft.traffic import gather, named_template
from tapproxy.contract.load import load_contract
from tapproxy.errors import ContractError

JSON = (("content-type", "application/json; charset=utf-8"),)


def _x(n: int, caller: str, callee: str, method: str, path: str, status: int,
       body: object = None, sent: object = None) -> Exchange:
    def raw(v: object) -> bytes:
        return b"" if v is None else json.dumps(v).encode()

    t = 1_767_225_600_000_000_000 + n * 10_000_000
    return Exchange(
        id=f"x{n}", caller=Party(caller, "proxy-auth"), callee=Party(callee, "service-map"),
        request=Request(method, "http", "127.0.0.1", 8000, path, "HTTP/1.1",
                        Headers(JSON if sent is not None else ()), raw(sent)),
        timing=Timing(t, t + 1, t + 2, t + 3),
        response=Response(status, "", "HTTP/1.1", Headers(JSON if body is not None else ()),
                          raw(body)))


_ids = itertools.count(1000)  # as a database would: a re-run gets new ids


def shop_run(drift: str = "") -> list[Exchange]:
    """What one run of a shop's tests sends: two orders created with the same request
    (so the noise model sees what varies), each read back, then listed."""
    xs: list[Exchange] = []
    made = []
    now = datetime.now(UTC) + timedelta(seconds=next(_ids))
    for _ in range(2):
        n = next(_ids)
        order = {"id": n, "ref": str(uuid.uuid4()), "createdAt": now.isoformat(),
                 "qty": 2, "price": 9.5, "state": "open", "note": None,
                 "lines": [{"sku": "A-1", "qty": 2}]}
        made.append(order)
        answer = dict(order)
        if drift == "type":
            answer["qty"] = "2"
        if drift == "missing":
            del answer["state"]
        xs.append(_x(len(xs), "web", "orders", "POST", "/orders",
                     200 if drift == "status" else 201, answer, {"sku": "A-1", "qty": 2}))
    for order in made:
        xs.append(_x(len(xs), "web", "orders", "GET", f"/orders/{order['id']}", 200, order))
    xs.append(_x(len(xs), "web", "orders", "GET", "/orders/0", 404, {"error": "no such"}))
    xs.append(_x(len(xs), "pytest", "web", "GET", "/health?deep=1", 200, {"ok": True}))
    return xs


def _write(tmp_path: Path, kind: str, records: list) -> list[str]:
    """The draft of `records` as files; the --contract values that load them."""
    if kind == "own":
        path = tmp_path / "own.yaml"
        path.write_text(yaml.safe_dump(draft_own(records), sort_keys=False))
        return [str(path)]
    if kind == "openapi":
        specs = []
        for callee, doc in draft_openapi(records).items():
            path = tmp_path / f"{callee}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            specs.append(f"{callee}={path}")
        return specs
    specs = []
    for (consumer, provider), doc in draft_pact(records).items():
        path = tmp_path / f"{consumer}-{provider}.json"
        path.write_text(json_text(doc), encoding="utf-8")  # as the CLI writes it
        specs.append(str(path))
    return specs


def _check(specs: list[str], records: list) -> list[tuple[str, str]]:
    result = check_records(records, [load_contract(s) for s in specs])
    assert result.checked == len([r for r in records if isinstance(r, Exchange)])
    return sorted((m.kind, m.where) for m in result.mismatches)


KINDS = ["own", "openapi", "pact"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_draft_passes_its_own_traffic_and_a_rerun(tmp_path, kind) -> None:
    first = shop_run()
    specs = _write(tmp_path, kind, first)
    assert _check(specs, first) == []
    assert _check(specs, shop_run()) == []  # new ids, UUIDs, timestamps: still clean


# A drifted POST answer, in each of the two created orders.
DRIFTS = {
    "type": ("body-type", "/qty"),
    "missing": ("missing-field", "/state"),
    "status": ("status", None),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_real_drift_is_flagged(tmp_path, kind, drift) -> None:
    specs = _write(tmp_path, kind, shop_run())
    found = _check(specs, shop_run(drift))
    want_kind, want_where = DRIFTS[drift]
    hits = [w for k, w in found if k == want_kind]
    assert len(found) == len(hits) == 2, found  # both POSTs, nothing else
    if want_where is not None:
        assert set(hits) == {want_where}


def test_own_draft_reads_as_a_person_would_write_it() -> None:
    doc = draft_own(shop_run())
    by_id = {i["id"]: i for i in doc["interactions"]}
    assert set(by_id) == {"orders POST /orders", "orders GET /orders/{orderId} 200",
                          "orders GET /orders/{orderId} 404", "web GET /health"}
    post = by_id["orders POST /orders"]
    assert post["request"]["body"] == {"sku": "A-1", "qty": 2}  # the same every time
    assert post["response"]["status"] == 201
    body = post["response"]["body"]
    assert body["id"] == {"type": "integer"}  # learned noise, and named like an id
    assert body["ref"]["regex"].startswith("^[0-9a-fA-F]{8}-")  # a UUID
    assert body["createdAt"]["type"] == "string" and "regex" in body["createdAt"]
    assert body["state"] == "open" and body["qty"] == 2 and body["price"] == 9.5
    assert body["note"] == {"any": True}  # only ever null: what else it holds is unknown
    assert body["lines"] == {"each": {"sku": "A-1", "qty": 2}}
    assert post["response"]["headers"] == {"content-type": {"regex": "^application/json"}}
    health = by_id["web GET /health"]
    assert (health["caller"], health["request"]["query"]) == \
        ("pytest", {"deep": {"type": "integer"}})


def test_a_value_echoing_the_path_is_no_constant() -> None:
    xs = [_x(0, "web", "orders", "GET", "/orders/7", 200, {"order": 7, "n": 1})]
    body = draft_own(xs)["interactions"][0]["response"]["body"]
    assert body == {"order": {"type": "integer"}, "n": 1}


def test_optional_and_nullable_fields() -> None:
    xs = [_x(0, "web", "s", "GET", "/a", 200, {"x": 1, "y": None}),
          _x(1, "web", "s", "GET", "/a", 200, {"y": "b", "z": 2.5}),
          _x(2, "web", "s", "GET", "/a", 200, {"y": "c", "z": 3})]
    body = draft_own(xs)["interactions"][0]["response"]["body"]
    assert body == {"x": {"exact": 1, "optional": True},
                    "y": {"type": "string", "nullable": True},
                    "z": {"type": "number", "optional": True}}


def test_fields_named_like_matcher_keywords_are_written_under_fields() -> None:
    xs = [_x(0, "web", "s", "GET", "/a", 200, {"type": "book", "min": 1})]
    body = draft_own(xs)["interactions"][0]["response"]["body"]
    assert body == {"fields": {"type": "book", "min": 1}}


@pytest.mark.parametrize(("path", "template"), [
    ("/orders/42", "/orders/{orderId}"),
    ("/users/7/orders/9?x=1", "/users/{userId}/orders/{orderId}"),
    ("/categories/5", "/categories/{categoryId}"),
    ("/orders/3f2b1c9e-8a7d-4e6f-9b0a-1c2d3e4f5a6b", "/orders/{orderId}"),
    ("/a/1/2", "/a/{aId}/{id}"),
    ("/order-lines/1/order-lines/2", "/order-lines/{orderLineId}/order-lines/{orderLineId2}"),
    ("/v2/items", "/v2/items"),
    ("/42", "/{id}"),
])
def test_named_templates(path, template) -> None:
    assert named_template(path) == template


def test_openapi_schemas_tightened_where_genson_is_loose() -> None:
    at = datetime.now(UTC)
    schema = schema_of([
        {"n": 1, "f": 1, "u": str(uuid.uuid4()), "t": at.isoformat(), "nul": None,
         "h": "Mon, 07 Dec 2026 20:57:04 GMT", "opt": "x"},
        {"n": 2, "f": 2.5, "u": str(uuid.uuid4()), "t": at.isoformat(), "nul": None,
         "h": "Tue, 08 Dec 2026 20:57:04 GMT"},
    ])
    props = schema["properties"]
    assert "$schema" not in schema
    assert props["n"] == {"type": "integer"} and props["f"] == {"type": "number"}
    assert props["u"] == {"type": "string", "format": "uuid"}
    assert props["t"] == {"type": "string", "format": "date-time"}
    assert props["h"] == {"type": "string"}  # a timestamp, but no RFC 3339 date-time
    assert props["nul"] == {}
    assert sorted(schema["required"]) == ["f", "h", "n", "nul", "t", "u"]


def test_openapi_draft_per_callee_with_parameters() -> None:
    docs = draft_openapi(shop_run())
    assert set(docs) == {"orders", "web"}
    for doc in docs.values():
        validate(doc)  # openapi-spec-validator: valid OpenAPI 3.1
    op = docs["orders"]["paths"]["/orders/{orderId}"]["get"]
    assert op["parameters"] == [{"name": "orderId", "in": "path", "required": True,
                                 "schema": {"type": "integer"}}]
    assert set(op["responses"]) == {"200", "404"}
    post = docs["orders"]["paths"]["/orders"]["post"]
    assert post["requestBody"]["required"] is True
    assert docs["web"]["paths"]["/health"]["get"]["parameters"][0] == \
        {"name": "deep", "in": "query", "required": True, "schema": {"type": "integer"}}


def test_pact_one_file_per_pair_and_examples_without_optional_fields() -> None:
    xs = [_x(0, "web", "s", "GET", "/a", 200, {"x": 1, "y": None, "k": "v"}),
          _x(1, "web", "s", "GET", "/a", 200, {"y": "b", "k": "v"}),
          _x(2, "cli", "s", "GET", "/a", 200, {"k": "v"})]
    pacts = draft_pact(xs)
    assert set(pacts) == {("web", "s"), ("cli", "s")}
    web = pacts[("web", "s")]
    assert web["metadata"]["pactSpecification"]["version"] == "4.0"
    (interaction,) = web["interactions"]
    assert interaction["type"] == "Synchronous/HTTP"
    assert interaction["response"]["body"]["content"] == {"k": "v"}


def test_nothing_to_draft_from_is_an_error() -> None:
    with pytest.raises(ContractError, match="no answered HTTP exchanges"):
        gather([])
    failed = _x(0, "web", "s", "GET", "/a", 200, {})
    with pytest.raises(ContractError):
        gather([replace(failed, response=None)])


def test_samples_are_bounded_but_every_call_counted() -> None:
    xs = [_x(i, "web", "s", "GET", f"/items/{i}", 200, {"i": i}) for i in range(120)]
    traffic = gather(xs, max_samples=10)
    (op,) = traffic.operations
    assert (op.calls, len(op.responses[200]), traffic.exchanges) == (120, 10, 120)
    assert Counter(op.template for op in traffic.operations) == {"/items/{itemId}": 1}
    big = "x" * 1_500_000  # 1.5 MB answers: a few kept (4 MiB), the first always
    (op,) = gather([_x(i, "web", "s", "GET", "/big", 200, {"b": big}) for i in range(6)]
                   ).operations
    assert (op.calls, len(op.responses[200])) == (6, 2)


def test_noise_learned_on_two_routes_loosens_a_route_called_once() -> None:
    trace = itertools.count(1)
    xs = [_x(n, "web", "s", "GET", path, 200, {"trace": f"t-{next(trace)}", "v": 1})
          for n, path in enumerate(["/a", "/a", "/b", "/b", "/c"])]
    by_path = {i["request"]["path"]: i["response"]["body"]
               for i in draft_own(xs)["interactions"]}
    # /c was called once; `trace` differed between repeated identical requests elsewhere.
    assert by_path["/c"] == {"trace": {"type": "string"}, "v": 1}


def test_fields_named_like_ids_are_never_constants() -> None:
    xs = [_x(0, "web", "s", "POST", "/orders", 201, {"id": 5, "orderId": 6, "n": 1},
             {"sku": "A"})]
    body = draft_own(xs)["interactions"][0]["response"]["body"]
    assert body == {"id": {"type": "integer"}, "orderId": {"type": "integer"}, "n": 1}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "id", "type", "x/y", "t~", "each", "é", ""]),
                      inner, max_size=4),
    max_leaves=12)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
# Requests always carry a body here: an own contract whose interaction requires a request
# body raises TypeError on a call without one (tapproxy/contract/own/rules.py, reported).
@given(bodies=st.lists(st.tuples(_json.filter(lambda v: v is not None), _json),
                       min_size=1, max_size=3),
       statuses=st.lists(st.sampled_from([200, 404]), min_size=3, max_size=3))
def test_any_json_calls_pass_their_own_draft(tmp_path, kind, bodies, statuses) -> None:
    xs = [_x(i, "web", "s", "POST", f"/items/{i + 1}", statuses[i], answer, sent)
          for i, (sent, answer) in enumerate(bodies)]
    assert _check(_write(tmp_path, kind, xs), xs) == []


@pytest.mark.parametrize("kind", KINDS)
def test_text_bodies_round_trip(tmp_path, kind) -> None:
    def answer(n: int, text: str) -> Exchange:
        x = _x(n, "web", "s", "GET", "/motd", 200)
        return replace(x, response=Response(200, "", "HTTP/1.1",
                                            Headers((("content-type", "text/plain"),)),
                                            text.encode()))

    xs = [answer(0, "sunny"), answer(1, "rain later")]
    specs = _write(tmp_path, kind, xs)
    assert _check(specs, xs) == []
    assert _check(specs, [answer(2, "fog")]) == []


def test_text_with_a_volatile_part_and_binary_bodies() -> None:
    def answer(n: int, body: bytes, ctype: str) -> Exchange:
        x = _x(n, "web", "s", "GET", "/a" if ctype.startswith("text") else "/logo", 200)
        return replace(x, response=Response(200, "", "HTTP/1.1",
                                            Headers((("content-type", ctype),)), body))

    ref = uuid.uuid4()
    xs = [answer(0, f"made {ref} for you".encode(), "text/plain"),
          answer(1, b"\x89PNG\r\n\x1a\n\x00", "image/png")]
    by_path = {i["request"]["path"]: i["response"] for i in draft_own(xs)["interactions"]}
    assert by_path["/a"]["body"] == {"type": "string"}
    assert "body" not in by_path["/logo"]
    assert by_path["/logo"]["headers"] == {"content-type": {"regex": "^image/png"}}
