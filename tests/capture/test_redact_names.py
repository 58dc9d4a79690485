"""Masking by name, as pure functions: one credential list for headers, query, form, JSON keys.

Every record is built here; each case shows what a user finds in a capture once the writer
thread has masked it, and what `redacted` then says.
"""

from __future__ import annotations

import gzip
import json
from urllib.parse import unquote

import pytest

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.capture.credentials import name_test, normalize_name
from tapproxy.capture.encoding import body_json
from tapproxy.capture.redact import MASK, Redactor

QMASK = "%3Credacted%3E"  # MASK, percent-encoded: what a masked URL or form value becomes


def _exchange(path: str = "/", request_headers=(), request_body: bytes = b"",
              response_headers=(), response_body: bytes | None = None) -> Exchange:
    response = None
    if response_body is not None:
        response = Response(200, "OK", "HTTP/1.1", Headers(response_headers), response_body)
    return Exchange(
        id="x1",
        caller=Party("checkout", "peer", "127.0.0.1:50000"),
        callee=Party("orders", "service-map", "127.0.0.1:8000"),
        request=Request("POST", "http", "orders", 8000, path, "HTTP/1.1",
                        Headers(request_headers), request_body),
        timing=Timing(request_start=1_767_225_600_000_000_000),
        response=response,
    )


@pytest.mark.parametrize("name", [
    "password", "Password", "PASSWD", "pwd", "secret", "client_secret", "clientSecret",
    "token", "access_token", "accessToken", "refresh-token", "id_token", "api_key", "apiKey",
    "APIKey", "x-api-key", "sig", "signature", "X-Amz-Signature", "X-Amz-Credential",
    "AWSAccessKeyId", "Authentication", "X-Auth-User", "X-Auth-Token", "authorization",
    "session_id", "sessionId", "private_key", "set-cookie",
])
def test_credential_like_names(name):
    assert name_test()(name)


@pytest.mark.parametrize("name", [
    "tokens", "max_tokens", "author", "keyword", "Sec-WebSocket-Key", "ETag", "signal",
    "passenger", "Referer", "WWW-Authenticate", "Content-Security-Policy", "user", "id",
])
def test_ordinary_names(name):
    assert not name_test()(name)


def test_names_compare_dash_underscore_and_case_tolerantly():
    assert normalize_name("X_Tenant-Id") == normalize_name("x-tenant_id") == "x-tenant-id"
    test = name_test(("X_Tenant_Id",))
    assert test("x-tenant-id") and test("xTenantId") and not test("tenant")


def test_query_parameters_are_masked_and_listed():
    x = Redactor()(_exchange("/cb?code=1&access_token=abc&sig=zz&x=token&flag&Api-Key=k#frag"))
    assert x.request.path == f"/cb?code=1&access_token={QMASK}&sig={QMASK}&x=token&flag" \
                             f"&Api-Key={QMASK}#frag"
    assert unquote(QMASK) == MASK
    assert x.redacted == ("request.query:access_token", "request.query:sig",
                          "request.query:Api-Key")


def test_percent_encoded_parameter_names_are_recognised():
    x = Redactor()(_exchange("/p?pass%77ord=s3cret&a+b=c"))
    assert x.request.path == f"/p?pass%77ord={QMASK}&a+b=c"
    assert x.redacted == ("request.query:password",)


def test_form_bodies_are_masked_and_content_length_kept_true():
    body = b"user=ann&password=hunter2&remember=1&client_secret=cs%21"
    headers = (("Content-Type", "application/x-www-form-urlencoded"),
               ("Content-Length", str(len(body))))
    x = Redactor()(_exchange(request_headers=headers, request_body=body))
    assert x.request.body == f"user=ann&password={QMASK}&remember=1&client_secret={QMASK}".encode()
    assert x.request.headers.get("content-length") == str(len(x.request.body))
    assert x.redacted == ("request.form:password", "request.form:client_secret")


def test_gzipped_form_is_masked_and_stays_gzipped():
    headers = (("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
               ("Content-Encoding", "gzip"))
    x = Redactor()(_exchange(request_headers=headers,
                             request_body=gzip.compress(b"token=t&a=1")))
    assert gzip.decompress(x.request.body) == f"token={QMASK}&a=1".encode()


def test_json_keys_are_masked_at_any_depth_by_name():
    doc = {"user": "ann", "password": "pw", "password_set": True, "token": None,
           "auth": {"refresh_token": "rt", "scope": "read"},
           "users": [{"name": "a", "apiKey": "k1"}, {"name": "b", "apiKey": "k2"}],
           "max_tokens": 5, "odd key": {"client_secret": "cs"}}
    x = Redactor()(_exchange(response_headers=(("Content-Type", "application/json"),),
                             response_body=json.dumps(doc).encode()))
    assert body_json(x.response) == {
        **doc, "password": MASK, "auth": MASK,
        "users": [{"name": "a", "apiKey": MASK}, {"name": "b", "apiKey": MASK}],
        "odd key": {"client_secret": MASK}}
    assert x.redacted == ("response.json:$.password", "response.json:$.auth",
                          "response.json:$.users[*].apiKey",
                          'response.json:$["odd key"].client_secret')


def test_json_without_credential_keys_is_stored_as_sent():
    before = _exchange(request_headers=(("Content-Type", "application/json"),),
                       request_body=b'{"sku": "a1",   "qty": 2, "note": "token"}')
    assert Redactor()(before) is before


@pytest.mark.parametrize("header", ["Referer", "Location", "Content-Location"])
def test_tokens_inside_url_valued_headers_are_masked(header):
    x = Redactor()(_exchange(
        request_headers=((header, "https://app.test/cb?state=s&access_token=tok#x"),),
        response_body=b"", response_headers=((header, "https://u:pw@app.test/next?sig=1"),)))
    assert x.request.headers.get(header) == f"https://app.test/cb?state=s&access_token={QMASK}#x"
    assert x.response.headers.get(header) == f"https://{QMASK}@app.test/next?sig={QMASK}"
    h = header.lower()
    assert x.redacted == (f"request.header:{h}?access_token", f"response.header:{h}@",
                          f"response.header:{h}?sig")


def test_url_headers_without_credentials_are_kept():
    before = _exchange(request_headers=(("Referer", "https://app.test/p?page=2"),))
    assert Redactor()(before) is before


def test_extra_names_apply_everywhere_and_extra_headers_to_headers_only():
    r = Redactor(names=("tenant",), extra_headers=("X-Internal",))
    x = r(_exchange("/p?tenant=acme&internal=1",
                    request_headers=(("Tenant", "acme"), ("X-Internal", "i"),
                                     ("Content-Type", "application/json")),
                    request_body=b'{"tenant": "acme", "internal": "i"}'))
    assert x.request.path == f"/p?tenant={QMASK}&internal=1"
    assert x.request.headers.fields == (("Tenant", MASK), ("X-Internal", MASK),
                                        ("Content-Type", "application/json"))
    assert body_json(x.request) == {"tenant": MASK, "internal": "i"}
    assert set(x.redacted) == {"request.header:tenant", "request.header:x-internal",
                               "request.query:tenant", "request.json:$.tenant"}


def test_headers_authentication_and_x_auth_are_masked():
    x = Redactor()(_exchange(request_headers=(("Authentication", "a"), ("X-Auth-User", "u"),
                                              ("X-Auth-Key", "k"), ("Accept", "*/*"))))
    assert x.request.headers.fields == (("Authentication", MASK), ("X-Auth-User", MASK),
                                        ("X-Auth-Key", MASK), ("Accept", "*/*"))


def test_a_process_command_line_keeps_no_credential_value():
    from tapproxy.capture.credentials import mask_command, name_test

    is_credential = name_test()
    assert mask_command("curl --data-urlencode password=pw-1 http://x/", is_credential) == (
        "curl --data-urlencode password=<redacted> http://x/", True)
    assert mask_command("app --api-key k-2 --port 5", is_credential) == (
        "app --api-key <redacted> --port 5", True)
    masked, _ = mask_command("x --token=t-3 http://u:pw-4@h/?access_token=t-5&a=2",
                             is_credential)
    assert not any(s in masked for s in ("t-3", "pw-4", "t-5")) and "a=2" in masked
    assert mask_command("python payments.py --port 5003", is_credential) == (
        "python payments.py --port 5003", False)


def test_one_redactor_masks_every_repeat_of_a_body_and_keeps_clean_repeats_as_sent():
    """The recorder's one Redactor sees the same bodies again and again: a body that held
    nothing to mask stays byte for byte, one that held a secret is masked every time."""
    redact = Redactor()
    clean = b'{"user":"ann","note":"nothing here"}'
    secret = b'{"user":"ann","password":"hunter2"}'
    json_headers = (("Content-Type", "application/json"),)
    for _ in range(3):
        for body in (clean, secret):
            x = redact(_exchange(request_headers=json_headers, request_body=body,
                                 response_headers=json_headers, response_body=body))
            for m in (x.request, x.response):
                if body is clean:
                    assert m.body == clean
                else:
                    assert body_json(m)["password"] == MASK
                    assert b"hunter2" not in m.body
            assert x.redacted == (() if body is clean else
                                  ("request.json:$.password", "response.json:$.password"))
    # The same bytes under another encoding are another body: a gzip of the secret one.
    gz = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"))
    for _ in range(2):
        x = redact(_exchange(request_headers=gz, request_body=gzip.compress(secret)))
        assert json.loads(gzip.decompress(x.request.body))["password"] == MASK
