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
from pact import Pact, match

pytestmark = pytest.mark.slow  # two mock servers judge every scenario (~5 s each)

UUID = "0e8d5b8a-4a3c-4c1e-9c1e-3f5b2e7d9a10"

#: name → (expected body with matchers, [actual bodies]); the actual bodies cover both
#: verdicts for each matcher.
BODIES = {
    "integer": ({"n": match.int(1)}, [{"n": 5}, {"n": 5.5}, {"n": "5"}]),
    "decimal": ({"n": match.decimal(1.5)}, [{"n": 2.25}, {"n": 2}]),
    "number": ({"n": match.number(1)}, [{"n": 2.5}, {"n": 3}, {"n": "2"}]),
    "string": ({"s": match.str("a")}, [{"s": "b"}, {"s": 1}]),
    "regex": ({"s": match.regex("AB-1", regex=r"[A-Z]{2}-\d+")},
              [{"s": "CD-22"}, {"s": "cd-22"}, {"s": "AB-1x"}]),
    "uuid": ({"u": match.uuid(UUID)}, [{"u": UUID.upper()}, {"u": "nope"}]),
    "boolean": ({"b": match.bool(True)}, [{"b": False}, {"b": "true"}, {"b": 1}]),
    "date": ({"d": match.date("2024-01-02")},
             [{"d": "2025-12-31"}, {"d": "2025-13-01"}, {"d": "31/12/2025"}]),
    "time": ({"t": match.time("12:34:56")}, [{"t": "23:59:59"}, {"t": "24:00:00"}]),
    "datetime": ({"t": match.datetime("2024-01-02T03:04:05+00:00")},
                 [{"t": "2025-06-07T08:09:10+0200"}, {"t": "2025-06-07T08:09:10+02:00"},
                  {"t": "2025-06-07 08:09:10"}]),
    "null": ({"x": match.null()}, [{"x": None}, {"x": 0}]),
    "include": ({"s": match.includes("ell")}, [{"s": "hello"}, {"s": "hxllo"}]),
    "type": ({"o": match.like({"a": 1, "b": "x"})},
             [{"o": {"a": 2, "b": "y"}}, {"o": {"a": "2", "b": "y"}},
              {"o": {"a": 2, "b": "y", "c": 3}}, {"o": {"a": 2}}]),
    "each like min 2": ({"l": match.each_like({"id": match.int(1)}, min=2)},
                        [{"l": [{"id": 1}, {"id": 2}, {"id": 3}]}, {"l": [{"id": 1}]},
                         {"l": [{"id": 1}, {"id": "2"}]}]),
    "each like max 2": ({"l": match.each_like("x", max=2)},
                        [{"l": ["a", "b"]}, {"l": ["a", "b", "c"]}, {"l": []}]),
    "array contains": ({"l": match.array_containing([match.int(1), "x"])},
                       [{"l": [5, "x", 9]}, {"l": ["x", 7]}, {"l": [5, "y"]}]),
    "each key": ({"m": match.each_key_matches({"ab": 1}, rules=match.regex(
        "ab", regex="[a-z]+"))}, [{"m": {"xy": 1}}, {"m": {"X1": 1}}]),
    "each value": ({"m": match.each_value_matches({"a": 1}, rules=match.int(1))},
                   [{"m": {"b": 2, "c": 3}}, {"m": {"b": "x"}}]),
    "literal": ({"a": [1, 2], "o": {"k": "v"}},
                [{"a": [1, 2], "o": {"k": "v"}}, {"a": [1, 2, 3], "o": {"k": "v"}},
                 {"a": [1], "o": {"k": "v"}}, {"a": [1, 2], "o": {}}]),
}

SCENARIOS = [(name, n, actual) for name, (_, actuals) in BODIES.items()
             for n, actual in enumerate(actuals)]

#: name → (query parameter and header matchers, [(actual query string, headers)]).
PARTS = {
    "query regex": ({"query": ("id", match.regex("12", regex=r"\d+"))},
                    [("id=345", {}), ("id=ab", {}), ("", {}), ("id=1&x=2", {})]),
    "query literal": ({"query": ("tag", "a b")}, [("tag=a+b", {}), ("tag=a%20b", {}),
                                                  ("tag=a&tag=b", {})]),
    "header regex": ({"header": ("X-Id", match.regex("12", regex=r"\d+"))},
                     [("", {"x-id": "99"}), ("", {"X-Id": "9a"}), ("", {})]),
    "header literal": ({"header": ("X-Mode", "fast")},
                       [("", {"X-MODE": "fast"}), ("", {"X-Mode": "Fast"}),
                        ("", {"X-Mode": "fast", "X-Other": "1"})]),
    "accept list": ({"header": ("Accept", "application/json, text/plain")},
                    [("", {"Accept": "application/json,text/plain"}),
                     ("", {"Accept": "text/plain, application/json"})]),
}

PART_SCENARIOS = [(name, n, actual) for name, (_, actuals) in PARTS.items()
                  for n, actual in enumerate(actuals)]


def _path(name: str, n: int) -> str:
    return f"/{name.replace(' ', '-')}/{n}"


@pytest.fixture(scope="module", params=["V3", "V4"])
def engine(request, tmp_path_factory):
    """Pact's engine verdict per scenario, and the pact file it wrote."""
    pact = Pact("web", "orders").with_specification(request.param)
    for name, n, _ in SCENARIOS:
        (pact.upon_receiving(f"{name} {n}")
            .with_request("POST", _path(name, n))
            .with_body(BODIES[name][0], content_type="application/json")
            .will_respond_with(200))
    for name, n, _ in PART_SCENARIOS:
        interaction = pact.upon_receiving(f"{name} {n}").with_request("GET", _path(name, n))
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
            r = s.post(f"{srv.url}{_path(name, n)}", json=actual, timeout=10)
            verdicts[(name, n)] = r.status_code == 200
        for name, n, (query, headers) in PART_SCENARIOS:
            r = s.get(f"{srv.url}{_path(name, n)}" + (f"?{query}" if query else ""),
                      headers=headers, timeout=10)
            verdicts[(name, n)] = r.status_code == 200
    out = tmp_path_factory.mktemp(f"engine-{request.param}")
    pact.write_file(out, overwrite=True)
    (path,) = out.glob("*.json")
    return verdicts, path


def _exchange(name: str, n: int, actual: object) -> Exchange:
    body = json.dumps(actual).encode()
    request = Request("POST", "http", "127.0.0.1", 80, _path(name, n), "HTTP/1.1",
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
    target = _path(name, n) + (f"?{query}" if query else "")
    x = Exchange(f"q{n}", Party("web", "header"), Party("orders", "service-map"),
                 Request("GET", "http", "127.0.0.1", 80, target, "HTTP/1.1",
                         Headers(tuple(headers.items()))),
                 Timing(1), Response(200, "OK", "HTTP/1.1"))
    verdict = load_contract(path).check(x)
    ours = verdict is not None and verdict.item is not None and not verdict.mismatches
    assert ours == verdicts[(name, n)], (actual, [m.message for m in verdict.mismatches])
