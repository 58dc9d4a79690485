"""Our Pact matcher against Pact's own engine on the matchers the specification cases
leave out (integer, decimal, date/time, include, arrayContains, eachKey, eachValue, ...).

pact-python's mock server is Pact's Rust engine: each scenario is an interaction it
judges a real request against (200 when it matches, 500 with mismatches when not). The
pact file it writes is then checked by tapproxy against an Exchange carrying the same
request; both verdicts must be the same, scenario by scenario.
"""

from __future__ import annotations

import json

import pytest
import requests

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract.load import load_contract

pytest.importorskip("pact", reason="pact-python is in the test extra")
from pact import Pact

from tests.contract.pact_scenarios import (
    BODIES,
    PART_SCENARIOS,
    PARTS,
    SCENARIOS,
    path_of,
)

pytestmark = pytest.mark.slow  # two mock servers judge every scenario (~5 s each)

@pytest.fixture(scope="module", params=["V3", "V4"])
def engine(request, tmp_path_factory):
    """Pact's engine verdict per scenario, and the pact file it wrote."""
    pact = Pact("web", "orders").with_specification(request.param)
    for name, n, _ in SCENARIOS:
        (pact.upon_receiving(f"{name} {n}")
            .with_request("POST", path_of(name, n))
            .with_body(BODIES[name][0], content_type="application/json")
            .will_respond_with(200))
    for name, n, _ in PART_SCENARIOS:
        interaction = pact.upon_receiving(f"{name} {n}").with_request("GET", path_of(name, n))
        for part, (key, value) in PARTS[name][0].items():
            if part == "query":
                interaction.with_query_parameter(key, value)
            else:
                interaction.with_header(key, value)
        interaction.will_respond_with(200)
    verdicts = {}
    with pact.serve(raises=False, verbose=False) as srv:
        s = requests.Session()
        s.trust_env = False
        for name, n, actual in SCENARIOS:
            r = s.post(f"{srv.url}{path_of(name, n)}", json=actual, timeout=10)
            verdicts[(name, n)] = r.status_code == 200
        for name, n, (query, headers) in PART_SCENARIOS:
            r = s.get(f"{srv.url}{path_of(name, n)}" + (f"?{query}" if query else ""),
                      headers=headers, timeout=10)
            verdicts[(name, n)] = r.status_code == 200
    out = tmp_path_factory.mktemp(f"engine-{request.param}")
    pact.write_file(out, overwrite=True)
    (path,) = out.glob("*.json")
    return verdicts, path


def _exchange(name: str, n: int, actual: object) -> Exchange:
    body = json.dumps(actual).encode()
    request = Request("POST", "http", "127.0.0.1", 80, path_of(name, n), "HTTP/1.1",
                      Headers((("Content-Type", "application/json"),)), body)
    return Exchange(f"x{n}", Party("web", "header"), Party("orders", "service-map"),
                    request, Timing(1), Response(200, "OK", "HTTP/1.1"))


def test_scenarios_cover_both_verdicts(engine):
    verdicts, _ = engine
    for name in [*BODIES, *PARTS]:
        outcomes = {v for (scenario, _), v in verdicts.items() if scenario == name}
        assert outcomes == {True, False}, name


@pytest.mark.parametrize(("name", "n", "actual"), SCENARIOS,
                         ids=[f"{name}-{n}" for name, n, _ in SCENARIOS])
def test_agrees_with_pacts_engine(engine, name, n, actual):
    verdicts, path = engine
    verdict = load_contract(path).check(_exchange(name, n, actual))
    ours = verdict is not None and verdict.item is not None and not verdict.mismatches
    assert ours == verdicts[(name, n)], (actual, [m.message for m in verdict.mismatches])


@pytest.mark.parametrize(("name", "n", "actual"), PART_SCENARIOS,
                         ids=[f"{name}-{n}" for name, n, _ in PART_SCENARIOS])
def test_query_and_headers_agree_with_pacts_engine(engine, name, n, actual):
    verdicts, path = engine
    query, headers = actual
    target = path_of(name, n) + (f"?{query}" if query else "")
    x = Exchange(f"q{n}", Party("web", "header"), Party("orders", "service-map"),
                 Request("GET", "http", "127.0.0.1", 80, target, "HTTP/1.1",
                         Headers(tuple(headers.items()))),
                 Timing(1), Response(200, "OK", "HTTP/1.1"))
    verdict = load_contract(path).check(x)
    ours = verdict is not None and verdict.item is not None and not verdict.mismatches
    assert ours == verdicts[(name, n)], (actual, [m.message for m in verdict.mismatches])
