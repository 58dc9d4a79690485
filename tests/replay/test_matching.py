"""Request keys, as properties: what must not count does not, what must count does."""

from __future__ import annotations

import json
import random
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.replay import noise_mask
from tapproxy.replay.matching import CRITERIA, RequestView, parse_criteria, request_key

MASK = noise_mask()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def _view(body: bytes = b"", query: str = "", ctype: str = "application/json",
          method: str = "POST", path: str = "/orders") -> RequestView:
    return RequestView(method, path, query, ctype, None, body)


def _shuffled(value, rnd: random.Random):
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@given(json_values, st.randoms(use_true_random=False))
def test_json_members_in_any_order_and_any_spacing_are_one_key(value, rnd):
    a = json.dumps(value).encode()
    b = json.dumps(_shuffled(value, rnd), indent=2).encode()
    assert request_key(_view(a), CRITERIA, MASK) == request_key(_view(b), CRITERIA, MASK)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 99), min_size=1),
       st.integers(100, 1000))
def test_a_changed_json_value_is_another_key(value, other):
    key = next(iter(value))
    changed = {**value, key: other}
    assert request_key(_view(json.dumps(value).encode()), CRITERIA, MASK) \
        != request_key(_view(json.dumps(changed).encode()), CRITERIA, MASK)


@given(st.lists(st.tuples(st.text("abcxyz", min_size=1, max_size=3), st.text("0123ab",
                                                                            max_size=3)),
                min_size=1, max_size=5, unique_by=lambda kv: kv[0]),
       st.randoms(use_true_random=False))
def test_query_parameters_in_any_order_are_one_key(pairs, rnd):
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    a, b = _view(query=urlencode(pairs), method="GET"), _view(query=urlencode(shuffled),
                                                              method="GET")
    assert request_key(a, CRITERIA, MASK) == request_key(b, CRITERIA, MASK)


@given(st.uuids(), st.uuids())
def test_ids_and_times_are_noise_in_a_body(one, two):
    a = json.dumps({"sku": "tea", "id": str(one), "at": "2026-12-07T10:00:00Z"}).encode()
    b = json.dumps({"sku": "tea", "id": str(two), "at": "2026-12-08T11:30:00Z"}).encode()
    assert request_key(_view(a), CRITERIA, MASK) == request_key(_view(b), CRITERIA, MASK)


def test_only_the_chosen_criteria_count():
    a = _view(b'{"a": 1}', query="x=1")
    b = _view(b'{"a": 2}', query="x=2")
    assert request_key(a, CRITERIA, MASK) != request_key(b, CRITERIA, MASK)
    narrow = parse_criteria(["path,method"])
    assert narrow == ("method", "path")
    assert request_key(a, narrow, MASK) == request_key(b, narrow, MASK)


def test_bodies_that_are_not_json_count_byte_for_byte():
    a, b = _view(b"\x00\x01", ctype="application/grpc"), _view(b"\x00\x02",
                                                                ctype="application/grpc")
    assert request_key(a, CRITERIA, MASK) != request_key(b, CRITERIA, MASK)
    form_a = _view(b"b=2&a=1", ctype="application/x-www-form-urlencoded")
    form_b = _view(b"a=1&b=2", ctype="application/x-www-form-urlencoded")
    assert request_key(form_a, CRITERIA, MASK) == request_key(form_b, CRITERIA, MASK)
