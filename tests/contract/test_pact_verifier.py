"""Responses: our verdicts against Pact's verifier on the same real provider.

pact-python writes a pact whose responses carry every matcher of `pact_scenarios`
(plus status and header expectations); a real aiohttp provider answers each interaction
with the scenario's actual response. Pact's verifier (the Rust engine) calls it directly
and judges each interaction; the same calls recorded through the real proxy are judged by
tapproxy. The two verdicts must be the same, interaction by interaction.
"""

from __future__ import annotations

import contextlib

import pytest
import requests
from aiohttp import web

from tapproxy.contract.check import check_records
from tapproxy.contract.load import load_contract
from tapproxy.supervisor.options import ServiceSpec

pytest.importorskip("pact", reason="pact-python is in the test extra")
from pact import Pact, Verifier, match

from tests.contract.pact_scenarios import BODIES, SCENARIOS, path_of

pytestmark = pytest.mark.slow  # a mock server, a verifier and a proxy run per spec

#: name → (expected status and headers, [(actual status, headers)]).
HEADS = {
    "status": ((201, {}), [(201, {}), (200, {})]),
    "header literal": ((200, {"X-Mode": "fast"}),
                       [(200, {"X-Mode": "fast"}), (200, {"X-Mode": "Fast"}), (200, {})]),
    "header regex": ((200, {"X-Id": match.regex("12", regex=r"\d+")}),
                     [(200, {"X-Id": "99"}), (200, {"X-Id": "9a"})]),
}
HEAD_SCENARIOS = [(name, n, actual) for name, (_, actuals) in HEADS.items()
                  for n, actual in enumerate(actuals)]


def _responses() -> dict[str, tuple[int, dict, object]]:
    """Path → the provider's actual (status, headers, JSON body)."""
    out = {path_of(name, n): (200, {}, body) for name, n, body in SCENARIOS}
    for name, n, (status, headers) in HEAD_SCENARIOS:
        out[path_of(name, n)] = (status, headers, {"ok": True})
    return out


def write_pact(spec: str, out) -> object:
    pact = Pact("web", "orders").with_specification(spec)
    for name, n, _ in SCENARIOS:
        (pact.upon_receiving(f"{name} {n}").with_request("GET", path_of(name, n))
            .will_respond_with(200)
            .with_body(BODIES[name][0], content_type="application/json"))
    for name, n, _ in HEAD_SCENARIOS:
        status, headers = HEADS[name][0]
        interaction = (pact.upon_receiving(f"{name} {n}")
                       .with_request("GET", path_of(name, n)).will_respond_with(status))
        for key, value in headers.items():
            interaction.with_header(key, value)
        interaction.with_body({"ok": True}, content_type="application/json")
    with pact.serve() as srv:  # pact-python writes what its mock server served
        s = requests.Session()
        s.trust_env = False
        for name, n, _ in [*SCENARIOS, *HEAD_SCENARIOS]:
            s.get(f"{srv.url}{path_of(name, n)}", timeout=10)
    pact.write_file(out, overwrite=True)
    (path,) = out.glob("*.json")
    return path


def provider() -> web.Application:
    responses = _responses()

    async def answer(request: web.Request) -> web.Response:
        status, headers, body = responses[request.path]
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


@pytest.mark.parametrize("spec", ["V3", "V4"])
def test_responses_agree_with_pacts_verifier(spec, tmp_path, start_proxy, services):
    pact_file = write_pact(spec, tmp_path / "pact")
    svc = services.start("orders", provider())

    verifier = Verifier("orders", host="127.0.0.1").add_transport(url=svc.url)
    verifier.add_source(pact_file)
    with contextlib.suppress(RuntimeError):  # it fails as it should: read its results
        verifier.verify()
    theirs = {r["description"]: r["result"] == "OK"
              for r in verifier.results["interactionResults"]}

    proxy = start_proxy(services=(ServiceSpec("orders", "127.0.0.1", svc.port),))
    for name, n, _ in [*SCENARIOS, *HEAD_SCENARIOS]:
        requests.get(f"{svc.url}{path_of(name, n)}", proxies={"http": proxy.url_as("web")},
                     timeout=10)
    result = check_records(proxy.records(), [load_contract(pact_file)])
    broken = {m.item for m in result.mismatches}
    ours = {item: item not in broken for _, item in result.covered}

    assert len(theirs) == len(SCENARIOS) + len(HEAD_SCENARIOS)
    assert ours == theirs
    families = {d.rsplit(" ", 1)[0] for d in theirs}
    for family in families:
        assert {v for d, v in theirs.items() if d.rsplit(" ", 1)[0] == family} == \
            {True, False}, family
