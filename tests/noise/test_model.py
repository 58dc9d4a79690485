"""NoiseModel: noise learned from repeated identical requests, --ignore globs, masking."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    TestCase,
    Timing,
)
from tapproxy.noise import (
    NoiseModel,
    header_pointer,
    parse_pointer_glob,
    request_key,
    route_key,
    walk,
)

JSON_HEADERS = (("content-type", "application/json"),)


def exchange(body: object, *, n: int = 0, path: str = "/orders", method: str = "GET",
             callee: str = "shop", caller: str = "tests", status: int = 200,
             headers: tuple[tuple[str, str], ...] = JSON_HEADERS,
             request_body: bytes = b"", route: str | None = None) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(
        id=f"x{n}", caller=Party(caller, "header"), callee=Party(callee, "service-map"),
        request=Request(method, "http", "127.0.0.1", 8080, path, "HTTP/1.1",
                        Headers(JSON_HEADERS), request_body),
        timing=Timing(1_767_225_600_000_000_000 + n),
        response=Response(status, "OK", "HTTP/1.1", Headers(headers), raw),
        route=route)


SCALAR = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
JSON = st.recursive(SCALAR, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text("abcxyz", max_size=3), kids, max_size=3),
                    max_leaves=15)
ORDER = "/orders/{id}"
ROUTE = ("shop", "GET", "/orders")


@given(JSON, st.integers(2, 6))
def test_copies_of_one_deterministic_exchange_teach_nothing(body, copies) -> None:
    model = NoiseModel.learn(exchange(body, n=i) for i in range(copies))
    assert model.learned() == []
    assert model == NoiseModel()


@settings(max_examples=50)
@given(st.dictionaries(st.sampled_from(["name", "qty", "tags", "note"]), JSON, max_size=4),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=2,
                max_size=5, unique_by=lambda t: t[0]).filter(
           lambda ts: len({t[1] for t in ts}) == len(ts)))
def test_exchanges_differing_only_in_id_and_created_at_teach_exactly_those(rest, stamps):
    xs = [exchange({**rest, "id": i, "createdAt": f"at {t}"}, n=k)
          for k, (i, t) in enumerate(stamps)]
    model = NoiseModel.learn(xs)
    assert model.learned() == [("shop GET /orders", "/createdAt"), ("shop GET /orders", "/id")]
    for pointer, _value in walk({**rest, "id": 0, "createdAt": "x"}):
        assert model.is_noise(xs[0], pointer) is (pointer in ("/id", "/createdAt")), pointer


def test_different_requests_or_statuses_are_not_compared() -> None:
    model = NoiseModel.learn([
        exchange({"name": "a"}, path="/orders?page=1"),
        exchange({"name": "b"}, path="/orders?page=2"),  # another query
        exchange({"name": "c"}, method="POST", request_body=b'{"q": 1}'),
        exchange({"name": "d"}, method="POST", request_body=b'{"q": 2}'),  # another body
        exchange({"name": "e"}, caller="other"),  # another caller
        exchange({"name": "f"}, status=404),  # another answer: not noise, an outcome
    ])
    assert model.learned() == []


def test_a_json_request_body_is_the_same_whatever_its_key_order() -> None:
    a = exchange({}, method="POST", request_body=b'{"a": 1, "b": [1, 2]}')
    b = exchange({}, method="POST", request_body=b'{"b":[1,2],"a":1}')
    c = exchange({}, method="POST", request_body=b'{"b":[2,1],"a":1}')
    assert request_key(a) == request_key(b) != request_key(c)
    model = NoiseModel.learn([exchange({"at": 1}, method="POST", request_body=a.request.body),
                              exchange({"at": 2}, method="POST", request_body=b.request.body)])
    assert model.learned() == [("shop POST /orders", "/at")]


def test_array_indices_are_learned_as_any_index() -> None:
    model = NoiseModel.learn([
        exchange({"items": [{"sku": "a", "seen": 1}, {"sku": "b", "seen": 2}]}, n=1),
        exchange({"items": [{"sku": "a", "seen": 5}, {"sku": "b", "seen": 6}]}, n=2),
    ])
    assert model.learned() == [("shop GET /orders", "/items/*/seen")]
    assert model.is_noise(ROUTE, "/items/7/seen")
    assert not model.is_noise(ROUTE, "/items/7/sku")
    assert not model.is_noise(("shop", "GET", "/other"), "/items/7/seen")  # that route only


def test_response_headers_that_vary_are_learned_by_name() -> None:
    model = NoiseModel.learn([
        exchange({}, headers=(*JSON_HEADERS, ("X-Request-Id", "r1"), ("Server", "s"))),
        exchange({}, headers=(*JSON_HEADERS, ("X-Request-Id", "r2"), ("Server", "s"))),
    ])
    assert model.learned() == [("shop GET /orders", header_pointer("x-request-id"))]
    assert model.is_noise(ROUTE, "header:x-request-id")
    assert not model.is_noise(ROUTE, "header:server")
    # A Date header is noise by its value alone.
    assert model.is_noise(ROUTE, "header:date", "Mon, 07 Dec 2026 20:57:04 GMT")


def test_a_text_body_that_varies_is_noise_as_a_whole() -> None:
    model = NoiseModel.learn([exchange(b"hello 1", headers=()), exchange(b"hello 2", headers=())])
    assert model.learned() == [("shop GET /orders", "")]
    assert model.mask("hello 3", ROUTE) == "<noise:learned>"


def test_routes_key_the_noise_and_noise_of_two_routes_counts_everywhere() -> None:
    assert route_key(exchange({}, path="/orders/42?x=1")) == ("shop", "GET", "/orders/{id}")
    assert route_key(exchange({}, path="/orders/42", route=ORDER)) == ("shop", "GET", ORDER)
    model = NoiseModel.learn([
        exchange({"traceId": "a", "v": 1}, path="/orders/1"),
        exchange({"traceId": "b", "v": 2}, path="/orders/1"),
        exchange({"traceId": "c"}, path="/stock"),
        exchange({"traceId": "d"}, path="/stock"),
    ])
    assert model.learned() == [("shop GET /orders/{id}", "/traceId"),
                               ("shop GET /orders/{id}", "/v"),
                               ("shop GET /stock", "/traceId"),
                               ("*", "/traceId")]
    elsewhere = ("billing", "POST", "/charges")
    assert model.is_noise(elsewhere, "/traceId") and not model.is_noise(elsewhere, "/v")
    assert model.is_noise(exchange({}, path="/orders/9"), "/v")  # an exchange names its route


def test_other_records_and_failed_exchanges_are_skipped() -> None:
    failed = exchange({"v": 2})
    failed = Exchange(failed.id, failed.caller, failed.callee, failed.request, failed.timing,
                      failed.response, ErrorInfo("reset", "cut mid-body"))
    model = NoiseModel.learn([TestCase("t", 1), exchange({"v": 1}), failed])
    assert model.learned() == []


def test_memory_is_bounded_by_forgetting_the_oldest_requests() -> None:
    def pair_apart(gap: int, max_fingerprints: int) -> NoiseModel:
        xs = [exchange({"v": 1}, path="/first")]
        # Empty answers: one fingerprint each, plus the request kept.
        xs += [exchange(b"", path=f"/filler/{i}", headers=()) for i in range(gap)]
        xs += [exchange({"v": 2}, path="/first")]
        return NoiseModel.learn(xs, max_fingerprints=max_fingerprints)

    assert pair_apart(5, max_fingerprints=100).learned() != []
    assert pair_apart(5, max_fingerprints=3).learned() == []
    # Past the bound the first request's fingerprint is gone: nothing to compare with.
    assert pair_apart(500, max_fingerprints=100).learned() == []


def test_mask_names_why_each_leaf_is_noise() -> None:
    model = NoiseModel.learn([exchange({"n": 1}), exchange({"n": 2})]).with_ignores(
        [parse_pointer_glob("/meta/**")])
    body = {"n": 3, "id": "3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f60", "meta": {"a": [1]},
            "msg": "at 2026-12-04T17:05:04Z", "keep": "same", "count": 7}
    assert model.mask(body, ROUTE) == {
        "n": "<noise:learned>", "id": "<noise:uuid>", "meta": "<noise:ignored>",
        "msg": "at <noise:timestamp>", "keep": "same", "count": 7}
    # Without a route only kinds and globs apply (n was learned for /orders alone).
    assert model.mask(body)["n"] == 3


def test_merged_and_with_ignores_add_up() -> None:
    a = NoiseModel.learn([exchange({"n": 1}), exchange({"n": 2})])
    b = NoiseModel.learn([exchange({"m": 1}, path="/x"), exchange({"m": 2}, path="/x")])
    g = parse_pointer_glob("/z")
    both = a.with_ignores([g]).merged(b.with_ignores([g]))
    assert both.learned() == [("shop GET /orders", "/n"), ("shop GET /x", "/m")]
    assert both.ignores == (g,)
    assert both.is_noise(None, "/z") and both.noise_kind(None, "/z") == "ignored"


@given(JSON, st.lists(st.sampled_from(["/a", "/*/b", "/**/x", "/0"]), max_size=2))
def test_mask_is_idempotent(body, globs) -> None:
    learned = NoiseModel.learn([exchange({"a": 1, "c": [1]}), exchange({"a": 2, "c": [2]})])
    model = learned.with_ignores(map(parse_pointer_glob, globs))
    for rk in (None, ROUTE):
        once = model.mask(body, rk)
        assert model.mask(once, rk) == once
