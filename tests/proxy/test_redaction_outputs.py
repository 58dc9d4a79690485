"""Secrets outside headers — query, form, JSON keys, URL-valued headers — never reach an output.

Real clients (httpx, curl) through the real proxy to a real aiohttp service; then every
place a user could see the traffic is searched for every secret: the capture file, the HAR
export, `show` (table, --exchange, --json) and the OTLP/JSON of `spans` (url.full).
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from aiohttp import web

from tapproxy.capture.encoding import body_json
from tapproxy.capture.redact import MASK
from tests.conftest import TAPPROXY

SECRETS = {
    "query_token": "qtok-1111",
    "query_sig": "qsig-2222",
    "form_password": "formpw-3333",
    "json_refresh": "jrefresh-4444",
    "json_client_secret": "jclient-5555",
    "referer_token": "reftok-6666",
    "location_token": "loctok-7777",
    "x_auth": "xauth-8888",
    "authentication": "authn-9999",
    "extra_name": "tenant-0000",
}


def app() -> web.Application:
    async def login(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {"access_token": "resp-at-1212", "token_type": "Bearer", "expires_in": 60},
            headers={"Location": f"/home?state=ok&token={SECRETS['location_token']}"})

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_post("/form", login)
    return app


@pytest.fixture
def svc(services):
    return services.start("auth", app())


def _traffic(proxy, svc) -> None:
    s = SECRETS
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        r = client.post(
            f"{svc.url}/login?access_token={s['query_token']}&sig={s['query_sig']}&page=2",
            json={"user": "ann", "refresh_token": s["json_refresh"],
                  "nested": {"client_secret": s["json_client_secret"]}, "tenant": s["extra_name"]},
            headers={"Referer": f"https://app.test/cb?code=1&access_token={s['referer_token']}",
                     "X-Auth-User": s["x_auth"], "Authentication": s["authentication"]})
        assert r.status_code == 200 and r.json()["access_token"] == "resp-at-1212"
    out = subprocess.run(
        ["curl", "-sS", "-x", proxy.url, "--data-urlencode", "user=ann",
         "--data-urlencode", f"password={s['form_password']}", f"{svc.url}/form"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def _outputs(proxy, tmp_path) -> dict[str, bytes]:
    """Every user-visible rendering of the capture."""
    har, otlp = tmp_path / "run.har", tmp_path / "spans.jsonl"
    runs = {
        "export": [*TAPPROXY, "export", str(proxy.capture), "--har", str(har)],
        "show": [*TAPPROXY, "show", str(proxy.capture)],
        "show --exchange 1": [*TAPPROXY, "show", str(proxy.capture), "--exchange", "1"],
        "show --exchange 2": [*TAPPROXY, "show", str(proxy.capture), "--exchange", "2"],
        "show --json": [*TAPPROXY, "show", str(proxy.capture), "--json"],
        "spans": [*TAPPROXY, "spans", str(proxy.capture), "--out", str(otlp), "--bodies"],
    }
    seen = {"capture": proxy.capture.read_bytes()}
    for name, cmd in runs.items():
        done = subprocess.run(cmd, capture_output=True, timeout=60)
        assert done.returncode == 0, (name, done.stderr)
        seen[name] = done.stdout + done.stderr
    seen["har"] = har.read_bytes()
    seen["otlp"] = otlp.read_bytes()
    return seen


def test_secrets_in_query_form_json_and_url_headers_reach_no_output(start_proxy, svc,
                                                                    tmp_path):
    proxy = start_proxy(redact_names=("tenant",))
    _traffic(proxy, svc)
    proxy.stop()

    outputs = _outputs(proxy, tmp_path)
    for where, data in outputs.items():
        for what, secret in [*SECRETS.items(), ("response json", "resp-at-1212")]:
            assert secret.encode() not in data, f"{what} found in {where}"

    xs = {x.request.path.partition("?")[0]: x for x in proxy.exchanges()}
    login, form = xs["/login"], xs["/form"]
    assert set(login.redacted) == {
        "request.query:access_token", "request.query:sig", "request.header:referer?access_token",
        "request.header:x-auth-user", "request.header:authentication",
        "request.json:$.refresh_token", "request.json:$.nested.client_secret",
        "request.json:$.tenant", "response.header:location?token", "response.json:$.access_token",
        "response.json:$.token_type"}
    assert login.request.path.endswith("&page=2")  # what is not a credential is kept
    assert body_json(login.response)["access_token"] == MASK
    assert body_json(login.response)["expires_in"] == 60
    assert form.redacted[0] == "request.form:password"
    assert b"user=ann" in form.request.body

    # url.full keeps the URL's shape with the secret values masked.
    spans = [json.loads(line) for line in outputs["otlp"].splitlines()]
    urls = [a["value"]["stringValue"]
            for req in spans for rs in req["resourceSpans"] for ss in rs["scopeSpans"]
            for sp in ss["spans"] for a in sp["attributes"] if a["key"] == "url.full"]
    assert any("/login?access_token=" in u and "page=2" in u for u in urls), urls


def test_no_redact_records_them_as_sent(start_proxy, svc):
    proxy = start_proxy(redact=False)
    _traffic(proxy, svc)
    proxy.stop()
    raw = proxy.capture.read_bytes()
    for what, secret in SECRETS.items():
        assert secret.encode() in raw, what


def test_live_spans_carry_no_query_secret(start_proxy, services):
    """url.full of spans exported live (--otlp) is masked like the capture, extra names too."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        received.append(msg)
        return web.Response(body=b"", content_type="application/x-protobuf")

    backend = web.Application()
    backend.router.add_post("/v1/traces", collect)
    otlp = services.start("backend", backend)
    svc = services.start("auth", app())
    proxy = start_proxy(otlp=otlp.url, redact_names=("tenant",))
    r = httpx.post(f"{svc.url}/login?access_token={SECRETS['query_token']}"
                   f"&tenant={SECRETS['extra_name']}&page=2", proxy=proxy.url, timeout=10)
    assert r.status_code == 200
    proxy.stop()

    urls = [a.value.string_value for m in received for rs in m.resource_spans
            for ss in rs.scope_spans for span in ss.spans for a in span.attributes
            if a.key == "url.full"]
    assert urls and all("page=2" in u for u in urls)
    wire = b"".join(m.SerializeToString() for m in received)
    assert SECRETS["query_token"].encode() not in wire
    assert SECRETS["extra_name"].encode() not in wire


def test_import_masks_what_record_would(start_proxy, svc, tmp_path):
    """A HAR (or flow file) made without tapproxy's redaction is masked on import."""
    from tests.conftest import run_cli

    proxy = start_proxy(redact=False)
    _traffic(proxy, svc)
    proxy.stop()
    har = tmp_path / "plain.har"
    assert run_cli("export", proxy.capture, "--har", har).returncode == 0
    assert SECRETS["query_token"].encode() in har.read_bytes()

    masked, kept = tmp_path / "masked.tap", tmp_path / "kept.tap"
    assert run_cli("import", har, "-o", masked).returncode == 0
    assert run_cli("import", har, "-o", kept, "--no-redact").returncode == 0
    for what, secret in SECRETS.items():
        if what != "extra_name":  # not a credential-like name: only --redact tenant masks it
            assert secret.encode() not in masked.read_bytes(), what
        assert secret.encode() in kept.read_bytes(), what
