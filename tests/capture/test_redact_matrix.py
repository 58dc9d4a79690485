"""Session ids in path parameters (`/cart;jsessionid=…`) are masked like query values,
and the quick look for credential-like JSON keys is derived from the one word list."""

from __future__ import annotations

import json

import pytest

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.capture.credentials import CREDENTIAL_WORDS, name_test
from tapproxy.capture.redact import _HINT, Redactor, _quick_check

QMASK = "%3Credacted%3E"


def _variants(word: str) -> list[str]:
    parts = word.split("-")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    return [word, word.upper(), "_".join(parts), camel, f"x-{word}", f"db_{'_'.join(parts)}_hash",
            camel[0].upper() + camel[1:]]


@pytest.mark.parametrize("words", [CREDENTIAL_WORDS, (*CREDENTIAL_WORDS, "pin", "one-time-code")])
def test_the_quick_check_catches_every_word_of_the_list_in_any_spelling(words) -> None:
    hint = _quick_check(words)
    for word in words:
        for key in _variants(word):
            body = json.dumps({"user": {key: "x"}}).encode().lower()
            assert hint.search(body), (word, key)


def test_the_quick_check_in_use_is_the_one_derived_from_the_list() -> None:
    assert _HINT.pattern == _quick_check(CREDENTIAL_WORDS).pattern
    assert _HINT.search(b'{"note": "hello", "count": 3}') is None  # still a quick "no"


@pytest.mark.parametrize("name", ["jsessionid", "JSESSIONID", "PHPSESSID", "sessionid"])
def test_session_id_parameter_names_are_credentials(name) -> None:
    assert name_test()(name)


def _exchange(path: str, location: str | None = None) -> Exchange:
    headers = Headers((("location", location),)) if location else Headers()
    return Exchange("x1", Party("shop", "proxy-auth"), Party("api", "host"),
                    Request("GET", "http", "api", 80, path, "HTTP/1.1"),
                    Timing(1_767_225_600_000_000_000),
                    response=Response(302, "Found", "HTTP/1.1", headers))


@pytest.mark.parametrize(("path", "masked", "names"), [
    ("/cart;jsessionid=0A1B2C3D", f"/cart;jsessionid={QMASK}", ["jsessionid"]),
    ("/cart;jsessionid=0A1B2C3D?item=7", f"/cart;jsessionid={QMASK}?item=7", ["jsessionid"]),
    ("/a;v=2;JSESSIONID=abc/b;sessionid=9;x=1/c", f"/a;v=2;JSESSIONID={QMASK}/b;sessionid="
     f"{QMASK};x=1/c", ["JSESSIONID", "sessionid"]),
    ("/shop;PHPSESSID=77/list", f"/shop;PHPSESSID={QMASK}/list", ["PHPSESSID"]),
    ("/a;v=2/b;flag", "/a;v=2/b;flag", []),  # not credentials: byte for byte
    ("/a?next=/b;jsessionid=1", "/a?next=/b;jsessionid=1", []),  # in a query value: not a path
])
def test_credential_path_parameters_are_masked(path, masked, names) -> None:
    x = Redactor()(_exchange(path))
    assert x.request.path == masked
    assert list(x.redacted) == [f"request.path:{n}" for n in names]


def test_a_session_id_in_a_location_header_is_masked() -> None:
    x = Redactor()(_exchange("/", location="http://api/cart;jsessionid=ABC123?x=1"))
    assert x.response.headers.get("location") == f"http://api/cart;jsessionid={QMASK}?x=1"
    assert list(x.redacted) == ["response.header:location;jsessionid"]
