"""Redaction on the real proxy: credentials are masked in the capture, never on the wire.

The service keeps what it received in memory (rather than echoing it in its body) so the
capture file can be searched byte for byte for every secret that passed through it.
"""

from __future__ import annotations

import gzip
import json

import pytest
import requests
from aiohttp import web

from tapproxy.capture.encoding import body_json
from tapproxy.capture.redact import MASK

SECRET_REQUEST_HEADERS = {
    "Authorization": "Bearer tok-authz-111",
    "X-Api-Key": "key-plain-222",
    "X-Goog-Api-Key": "key-goog-333",
    "X-Session-Token": "tok-session-444",
}
COOKIE = ("sid", "cookie-req-555")
PLAIN_REQUEST_HEADERS = {"Accept": "application/json", "X-Request-Id": "req-42",
                         "Content-Type": "application/json"}
SET_COOKIES = ("srv-cookie-666", "srv-cookie-777")
RESPONSE_TOKEN = "tok-auth-888"

LOGIN = {"user": "ann", "password": "hunter2-pw",
         "cards": [{"number": "4111-card", "exp": "12/30"}, {"number": "5500-card", "exp": "1/31"}],
         "note": "keep me"}
ACCOUNT = {"id": 7, "password": "resp-pw-999",
           "cards": [{"number": "3400-card", "brand": "amex"}],
           "session": {"token": "nested-tok-000", "ttl": 60}, "token": "top-tok-000"}


# ACCOUNT as stored with the default redaction: credential-like keys masked at any depth.
MASKED_BY_NAME = {**ACCOUNT, "password": MASK, "token": MASK,
                  "session": {"token": MASK, "ttl": 60}}


class Received(list):
    """Requests as the service saw them: (path, headers, body)."""


def secrets_app(received: Received) -> web.Application:
    async def login(request: web.Request) -> web.Response:
        received.append((request.path, list(request.headers.items()), await request.read()))
        r = web.json_response(ACCOUNT, headers={"X-Auth-Token": RESPONSE_TOKEN,
                                                "X-Request-Id": "resp-42",
                                                "X-Internal": "internal-resp"})
        r.set_cookie("sid", SET_COOKIES[0])
        r.set_cookie("remember", SET_COOKIES[1])
        return r

    async def account_gz(request: web.Request) -> web.Response:
        received.append((request.path, list(request.headers.items()), await request.read()))
        return web.Response(body=gzip.compress(json.dumps(ACCOUNT).encode()),
                            headers={"Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_get("/account.gz", account_gz)
    return app


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def svc(services, received):
    return services.start("secrets", secrets_app(received))


def _login(proxy_url: str, svc_url: str, extra: dict | None = None) -> requests.Response:
    headers = {**SECRET_REQUEST_HEADERS, **PLAIN_REQUEST_HEADERS, **(extra or {})}
    r = requests.post(f"{svc_url}/login", data=json.dumps(LOGIN), headers=headers,
                      cookies=dict([COOKIE]), proxies={"http": proxy_url}, timeout=10)
    assert r.status_code == 200
    return r


def _all_secrets() -> list[str]:
    return [*SECRET_REQUEST_HEADERS.values(), COOKIE[1], *SET_COOKIES, RESPONSE_TOKEN]


def test_credential_headers_are_masked_by_default_but_delivered(proxy, svc, received):
    r = _login(proxy.url, svc.url)

    # The wire is untouched both ways.
    [(_, seen, body)] = received
    seen_h = {k.lower(): v for k, v in seen}
    for name, value in SECRET_REQUEST_HEADERS.items():
        assert seen_h[name.lower()] == value
    assert seen_h["cookie"] == f"{COOKIE[0]}={COOKIE[1]}"
    assert json.loads(body) == LOGIN
    assert r.cookies.get("sid") == SET_COOKIES[0] and r.cookies.get("remember") == SET_COOKIES[1]
    assert r.headers["X-Auth-Token"] == RESPONSE_TOKEN
    assert r.json() == ACCOUNT

    [x] = proxy.exchanges()
    q, resp = x.request.headers, x.response.headers
    for name in [*SECRET_REQUEST_HEADERS, "Cookie"]:
        assert q.get_all(name) == [MASK], name
    for name, value in PLAIN_REQUEST_HEADERS.items():
        assert q.get(name) == value
    assert resp.get_all("Set-Cookie") == [MASK, MASK]
    assert resp.get("X-Auth-Token") == MASK
    assert resp.get("X-Request-Id") == "resp-42" and resp.get("Content-Type").startswith(
        "application/json")
    # Header order and count are kept: only values change.
    assert [k.lower() for k, _ in q] == [k.lower() for k, _ in seen]
    assert set(x.redacted) == {
        "request.header:authorization", "request.header:x-api-key",
        "request.header:x-goog-api-key", "request.header:x-session-token",
        "request.header:cookie", "response.header:set-cookie", "response.header:x-auth-token",
        "request.json:$.password", "response.json:$.password", "response.json:$.session.token",
        "response.json:$.token",
    }
    # JSON keys named like credentials are masked by default; the rest is kept.
    assert body_json(x.request) == {**LOGIN, "password": MASK}
    assert body_json(x.response) == MASKED_BY_NAME

    proxy.stop()
    raw = proxy.capture.read_bytes()
    for secret in [*_all_secrets(), "hunter2-pw", "resp-pw-999", "nested-tok-000",
                   "top-tok-000"]:
        assert secret.encode() not in raw, secret


def test_extra_headers_and_json_paths(start_proxy, svc, received):
    proxy = start_proxy(redact_headers=("x-internal",),
                        redact_json=("$.password", "$.cards[*].number"))
    r = _login(proxy.url, svc.url, extra={"X-Internal": "internal-req"})
    g = requests.get(f"{svc.url}/account.gz", proxies={"http": proxy.url}, timeout=10)

    # What the service and client exchanged is what they sent.
    assert json.loads(received[0][2]) == LOGIN
    assert dict(received[0][1])["X-Internal"] == "internal-req"
    assert r.json() == ACCOUNT and r.headers["X-Internal"] == "internal-resp"
    assert g.json() == ACCOUNT

    xs = {x.request.path: x for x in proxy.exchanges()}
    login, gz = xs["/login"], xs["/account.gz"]
    assert login.request.headers.get("X-Internal") == MASK
    assert login.response.headers.get("X-Internal") == MASK
    assert body_json(login.request) == {**LOGIN, "password": MASK, "cards": [
        {"number": MASK, "exp": "12/30"}, {"number": MASK, "exp": "1/31"}]}
    masked_account = {**MASKED_BY_NAME, "cards": [{"number": MASK, "brand": "amex"}]}
    assert body_json(login.response) == masked_account
    assert {"request.header:x-internal", "response.header:x-internal",
            "request.json:$.password", "request.json:$.cards[*].number",
            "response.json:$.password", "response.json:$.cards[*].number"} <= set(login.redacted)

    # The gzip body is stored still gzip-encoded, and decodes to the masked document.
    assert gz.response.headers.get("Content-Encoding") == "gzip"
    assert gz.response.body[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(gz.response.body)) == masked_account
    assert gz.redacted == ("response.json:$.password", "response.json:$.session.token",
                           "response.json:$.token", "response.json:$.cards[*].number")

    proxy.stop()
    raw = proxy.capture.read_bytes()
    for secret in [*_all_secrets(), "hunter2-pw", "4111-card", "5500-card", "resp-pw-999",
                   "3400-card", "internal-req", "internal-resp"]:
        assert secret.encode() not in raw, secret
    assert b"keep me" in raw and b"amex" in raw  # the rest is still there


def test_any_depth_json_path(start_proxy, svc):
    proxy = start_proxy(redact_json=("$..number",))
    requests.get(f"{svc.url}/account.gz", proxies={"http": proxy.url}, timeout=10)
    [x] = proxy.exchanges()
    assert json.loads(gzip.decompress(x.response.body)) == {
        **MASKED_BY_NAME, "cards": [{"number": MASK, "brand": "amex"}]}


def test_redaction_off_records_everything_as_sent(start_proxy, svc, received):
    proxy = start_proxy(redact=False, redact_json=("$.password",))
    _login(proxy.url, svc.url)
    [x] = proxy.exchanges()
    assert x.redacted == ()
    for name, value in {**SECRET_REQUEST_HEADERS, **PLAIN_REQUEST_HEADERS}.items():
        assert x.request.headers.get(name) == value
    assert x.request.headers.get("Cookie") == f"{COOKIE[0]}={COOKIE[1]}"
    assert x.request.body == received[0][2]
    assert body_json(x.request) == LOGIN and body_json(x.response) == ACCOUNT
    assert x.response.headers.get("X-Auth-Token") == RESPONSE_TOKEN
    cookies = " ".join(x.response.headers.get_all("Set-Cookie"))
    assert all(c in cookies for c in SET_COOKIES)
    proxy.stop()
    raw = proxy.capture.read_bytes()
    for secret in _all_secrets():
        assert secret.encode() in raw, secret


@pytest.mark.parametrize("redact", [True, False])
def test_proxy_credentials_are_neither_recorded_nor_forwarded(start_proxy, svc, received,
                                                              redact):
    proxy = start_proxy(redact=redact)
    # requests turns the user:password in the proxy URL into Proxy-Authorization.
    _login(proxy.url_as("checkout"), svc.url, extra={"x-tapproxy-test": "t"})
    [(_, seen, _)] = received
    names = {k.lower() for k, _ in seen}
    assert "proxy-authorization" not in names and "x-tapproxy-test" not in names
    [x] = proxy.exchanges()
    assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
    assert x.test == "t"
    assert "proxy-authorization" not in x.request.headers
    assert "x-tapproxy-test" not in x.request.headers
    assert not any("proxy-authorization" in entry for entry in x.redacted)
    proxy.stop()
    # "checkout:tap" base64-encoded, as it travelled in Proxy-Authorization.
    assert b"Y2hlY2tvdXQ6dGFw" not in proxy.capture.read_bytes()
