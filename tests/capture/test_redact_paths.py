"""JSON-path redaction as pure functions: parse_json_path and Redactor on hand-built records.

No sockets: every record is built here, so each case shows exactly what a user would find
in a capture after the writer thread has masked it.
"""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.capture import Exchange, Headers, Party, Request, Response, TestCase, Timing
from tapproxy.capture.credentials import name_test
from tapproxy.capture.encoding import body_json
from tapproxy.capture.redact import MASK, Redactor, parse_json_path
from tapproxy.errors import UsageError


def _exchange(
    request_body: bytes = b"",
    request_headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
    response_body: bytes | None = None,
    response_headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
) -> Exchange:
    response = None
    if response_body is not None:
        response = Response(200, "OK", "HTTP/1.1", Headers(response_headers), response_body)
    return Exchange(
        id="x1",
        caller=Party("checkout", "proxy-auth", "127.0.0.1:50000"),
        callee=Party("orders", "service-map", "127.0.0.1:8000"),
        request=Request("POST", "http", "orders", 8000, "/pay", "HTTP/1.1",
                        Headers(request_headers), request_body),
        timing=Timing(request_start=1_767_225_600_000_000_000),
        response=response,
    )


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


# -- parse_json_path -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("$.a.b", ("a", "b")),
        ("a.b", ("a", "b")),
        ("  $.a  ", ("a",)),
        ("$.items[*].card", ("items", "*", "card")),
        ("$['odd key']", ("odd key",)),
        ('$["odd key"].x', ("odd key", "x")),
        ("$.list[0]", ("list", 0)),
        ("$.list[12].id", ("list", 12, "id")),
        ("$..['token']", ("..", "token")),
        ("$.a.*", ("a", "*")),
        ("$.x-request_id$", ("x-request_id$",)),
        ("$..token", ("..", "token")),
        ("$.a..b", ("a", "..", "b")),
    ],
)
def test_valid_paths_parse_to_segments(path, segments):
    assert parse_json_path(path) == segments


@pytest.mark.parametrize(
    "path",
    ["", "$", "$.", "$.a.", "$..", "$.a..", "$.a b", "$.1a", "$[", "$.a[", "$.a[-1]",
     "$.a[x]", "$['unterminated]", "$.a]", "$$.a", "$.a[*"],
)
def test_invalid_paths_raise_usage_error_naming_the_path(path):
    with pytest.raises(UsageError) as e:
        parse_json_path(path)
    assert path in str(e.value)
    assert "--redact-json" in str(e.value)


def test_redactor_rejects_a_bad_path_when_built():
    with pytest.raises(UsageError, match=r"\$\.cards\[x\]"):
        Redactor(json_paths=("$.password", "$.cards[x]"))


# -- masking by path -----------------------------------------------------------------------

ORDER = {
    "user": "ann",
    "pin": "hunter2",
    "items": [{"sku": "a1", "card": "4111"}, {"sku": "b2", "card": "5500"}, {"sku": "c3"}],
    "list": ["first", "second"],
    "odd key": "value",
    "nested": {"ref": "t1", "deeper": [{"ref": "t2", "keep": 1}]},
    "ref": "t0",
}


@pytest.mark.parametrize(
    ("path", "changes"),
    [
        ("$.pin", {"pin": MASK}),
        ("pin", {"pin": MASK}),
        ("$.items[*].card", {"items": [{"sku": "a1", "card": MASK},
                                       {"sku": "b2", "card": MASK}, {"sku": "c3"}]}),
        ("$['odd key']", {"odd key": MASK}),
        ("$.list[0]", {"list": [MASK, "second"]}),
        ("$.list[1]", {"list": ["first", MASK]}),
        ("$..['ref']", {"ref": MASK,
                          "nested": {"ref": MASK, "deeper": [{"ref": MASK, "keep": 1}]}}),
        ("$.nested.deeper[0].ref", {"nested": {"ref": "t1",
                                                 "deeper": [{"ref": MASK, "keep": 1}]}}),
    ],
)
def test_path_masks_exactly_what_it_names(path, changes):
    x = Redactor(json_paths=(path,))(_exchange(_json(ORDER), response_body=_json(ORDER)))
    expected = {**ORDER, **changes}
    assert body_json(x.request) == expected
    assert body_json(x.response) == expected
    assert x.redacted == (f"request.json:{path}", f"response.json:{path}")


def test_dotted_descent_masks_every_depth():
    x = Redactor(json_paths=("$..ref",))(_exchange(_json(ORDER)))
    assert body_json(x.request)["nested"] == {"ref": MASK, "deeper": [{"ref": MASK, "keep": 1}]}


@pytest.mark.parametrize("path", ["$.missing", "$.list[5]", "$.user.name", "$.items[0].card.x",
                                  "$.list.first", "$['items'][9]"])
def test_path_naming_nothing_leaves_the_body_and_log_alone(path):
    before = _exchange(_json(ORDER), response_body=_json(ORDER))
    after = Redactor(json_paths=(path,))(before)
    assert after is before  # nothing masked: the very same record goes to the file


def test_several_paths_are_each_logged_once_per_side():
    x = Redactor(json_paths=("$.pin", "$.items[*].card", "$.absent"))(
        _exchange(_json(ORDER), response_body=_json({"pin": "p"})))
    assert x.redacted == ("request.json:$.pin", "request.json:$.items[*].card",
                          "response.json:$.pin")
    assert body_json(x.response) == {"pin": MASK}


# -- any-depth property --------------------------------------------------------------------

# Keys that are not credential-like: those are masked by name whatever the path says.
_is_credential = name_test()
_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,4}", fullmatch=True).filter(
    lambda k: not _is_credential(k))
_LEAVES = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6))


@st.composite
def _doc_and_key(draw):
    key = draw(_KEYS)
    names = st.just(key) | _KEYS | st.text(max_size=4).filter(lambda k: not _is_credential(k))
    doc = draw(st.recursive(
        _LEAVES,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children,
                                                                          max_size=4),
        max_leaves=30,
    ))
    return doc, key


def _mask_everywhere(node: object, key: str) -> object:
    """What `$..key` means: every value under `key`, at any depth, becomes the mask."""
    if isinstance(node, dict):
        return {k: MASK if k == key else _mask_everywhere(v, key) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask_everywhere(v, key) for v in node]
    return node


def _occurs(node: object, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_occurs(v, key) for v in node.values())
    return isinstance(node, list) and any(_occurs(v, key) for v in node)


def _check_descent(path: str, doc: object, key: str) -> None:
    body = _json(doc)
    before = _exchange(body, response_body=gzip.compress(body), response_headers=(
        ("Content-Type", "application/json"), ("Content-Encoding", "gzip")))
    after = Redactor(json_paths=(path,))(before)
    if not _occurs(doc, key):
        assert after is before
        return
    assert body_json(after.request) == _mask_everywhere(doc, key)
    assert json.loads(gzip.decompress(after.response.body)) == _mask_everywhere(doc, key)
    assert after.redacted == (f"request.json:{path}", f"response.json:{path}")


@settings(max_examples=150, deadline=None)
@given(_doc_and_key())
def test_bracketed_descent_masks_every_occurrence_and_nothing_else(doc_key):
    doc, key = doc_key
    _check_descent(f"$..['{key}']", doc, key)


@settings(max_examples=150, deadline=None)
@given(_doc_and_key())
def test_dotted_descent_masks_every_occurrence_and_nothing_else(doc_key):
    doc, key = doc_key
    _check_descent(f"$..{key}", doc, key)


# -- bodies that are left alone ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ((("Content-Type", "text/plain"),), _json({"password": "p"})),
        ((), _json({"password": "p"})),
        ((("Content-Type", "application/json"),), b"password=p, not json"),
        ((("Content-Type", "application/json"),), b"\xff\xfe\x00garbage"),
        ((("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
         b"\x1f\x8b\x08\x00corrupt" + _json({"password": "p"})),
        ((("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
         gzip.compress(_json({"password": "p"}))[:-12]),
        ((("Content-Type", "application/json"), ("Content-Encoding", "compress")),
         _json({"password": "p"})),
        ((("Content-Type", "application/json"),), b""),
    ],
    ids=["text-plain", "no-content-type", "not-json", "not-utf8", "corrupt-gzip",
         "truncated-gzip", "unknown-encoding", "empty"],
)
def test_bodies_that_are_not_json_are_left_alone(headers, body):
    before = _exchange(body, request_headers=headers, response_body=body,
                       response_headers=headers)
    after = Redactor(json_paths=("$.password",))(before)
    assert after is before


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "application/problem+json", "APPLICATION/JSON"])
def test_json_flavoured_content_types_are_masked(content_type):
    x = Redactor(json_paths=("$.password",))(_exchange(
        _json({"password": "p", "a": 1}), request_headers=(("Content-Type", content_type),)))
    assert body_json(x.request) == {"password": MASK, "a": 1}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_encoded_json_is_masked_and_re_encoded_the_same_way(encoding):
    from tapproxy.capture.encoding import decode_body, encode_body

    doc = {"password": "p", "keep": ["x", 1, None]}
    headers = (("Content-Type", "application/json"), ("Content-Encoding", encoding))
    x = Redactor(json_paths=("$.password",))(
        _exchange(response_body=encode_body(_json(doc), encoding), response_headers=headers))
    assert x.response.headers.get("content-encoding") == encoding
    assert json.loads(decode_body(x.response.body, encoding)) == {**doc, "password": MASK}


def test_masked_body_keeps_its_content_length_true():
    """The stored record describes the body it stores (replay and HAR export rely on it)."""
    body = _json({"password": "correct horse battery staple", "a": 1})
    headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))))
    x = Redactor(json_paths=("$.password",))(_exchange(body, request_headers=headers))
    assert body_json(x.request) == {"password": MASK, "a": 1}
    assert x.request.headers.get("content-length") == str(len(x.request.body))


# -- headers and other records -------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "api-key",
    "X-Goog-Api-Key", "X-Session-Token", "X-Access-Key", "Client-Secret", "X-Password",
    "api_key", "X-Session-Id", "X-CSRF-Token", "X-Amz-Security-Token",
])
def test_credential_headers_are_masked_by_default(name):
    x = Redactor()(_exchange(request_headers=((name, "s3cret"), ("Accept", "*/*"))))
    assert x.request.headers.fields == ((name, MASK), ("Accept", "*/*"))
    assert x.redacted == (f"request.header:{name.lower()}",)


@pytest.mark.parametrize("name", [
    "Content-Type", "Accept", "X-Request-Id", "Sec-WebSocket-Key", "Sec-WebSocket-Accept",
    "User-Agent", "ETag", "Content-Length", "Cache-Control", "Keep-Alive",
])
def test_ordinary_headers_are_kept(name):
    before = _exchange(request_headers=((name, "v"),), response_body=b"",
                       response_headers=((name, "v"),))
    assert Redactor()(before) is before


def test_extra_headers_are_masked_case_insensitively():
    x = Redactor(extra_headers=("X-Internal",))(
        _exchange(response_body=b"", response_headers=(("x-internal", "i"), ("X-Other", "o"))))
    assert x.response.headers.fields == (("x-internal", MASK), ("X-Other", "o"))
    assert x.redacted == ("response.header:x-internal",)


def test_test_case_records_pass_through():
    case = TestCase("t", started=1, ended=2, outcome="passed")
    assert Redactor(json_paths=("$.password",))(case) is case
