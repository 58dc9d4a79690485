"""path_template: ids in path segments as {id}, for calls no route template names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapproxy.noise import path_template


@pytest.mark.parametrize(("path", "template"), [
    ("/orders/42", "/orders/{id}"),
    ("/orders/42?x=1", "/orders/{id}"),
    ("/orders/42/items/7/", "/orders/{id}/items/{id}/"),
    ("/items/3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f60", "/items/{id}"),
    ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{id}"),
    ("/sessions/Zx9fK2LmQ8pR4tV7wY1bN3/end", "/sessions/{id}/end"),
    ("/v2/orders", "/v2/orders"),  # a version is no id
    ("/health", "/health"),
    ("/health?since=1764867904", "/health"),  # the query is dropped
    ("/", "/"),
    ("", ""),
    ("/orders/{id}", "/orders/{id}"),  # a template is its own template
    ("/api/v1/report-2024", "/api/v1/report-2024"),
])
def test_templates(path, template) -> None:
    assert path_template(path) == template


_SEGMENT = st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
                     st.integers(0, 10**12).map(str), st.uuids().map(str))
_PATH = st.lists(_SEGMENT, max_size=6).map(lambda s: "/" + "/".join(s))


@given(_PATH, st.from_regex(r"(\?[a-z0-9=&]*)?", fullmatch=True))
def test_template_is_idempotent_and_keeps_the_shape(path: str, query: str) -> None:
    t = path_template(path + query)
    assert path_template(t) == t
    assert t.count("/") == path.count("/")
    assert "?" not in t


@given(st.from_regex(r"(/[a-zA-Z._~-]*)*", fullmatch=True))
def test_a_path_without_digits_is_unchanged(path: str) -> None:
    assert path_template(path) == path
