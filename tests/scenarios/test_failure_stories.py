"""Issue 24's promise: the failure story right and honest with zero set-up.

A user's suite (suite/test_cascades.py) starts its own services with plain
subprocess.Popen, each calling the next through HTTP_PROXY with its own name as proxy
user (the Node and Go ones set their proxy in code), and runs under `pytest --tapproxy`.
Ten cascades, each failing because of a service further down. The inner suite runs
twice, once per session: with process names (tapproxy looks up the process behind a
loopback callee) and with `--tapproxy-no-process-names`. Then `tapproxy why --json`
and the failing tests' `tapproxy` sections are checked against what really happened.

What really happened is known without trusting tapproxy's names: every call's callee is
the service listening on the port in its URL (suite/ports.json), its caller the proxy
user the service calls with, or `tests`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tapproxy.capture import open_capture

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
INNER_FILE = "test_cascades.py"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy", "PYTEST_ADDOPTS")


@dataclass(frozen=True)
class Expected:
    """One cascade's truth, in service names: (caller, callee, method, path) of the root
    (its first attempt); (caller, callee, path, role) of every consequence; what must be
    among the other failures; a failing call that must not be the root."""

    root: tuple[str, str, str, str]
    consequences: tuple[tuple[str, str, str, str], ...]
    others: tuple[tuple[str, str, str, str], ...] = ()
    not_root: tuple[str, str, str] | None = None


def _up(*hops: tuple[str, str, str]) -> tuple[tuple[str, str, str, str], ...]:
    """The test's call to the gateway and the given hops, each propagating the root."""
    return tuple((a, b, p, "propagated") for a, b, p in (("tests", "gateway", "/checkout"),
                                                         *hops))


EXPECTED = {
    "test_depth3_cascade": Expected(
        ("payments", "bank", "POST", "/transfers"),
        _up(("gateway", "orders", "/orders"), ("orders", "payments", "/charges"))),
    "test_fan_out": Expected(
        ("orders", "payments", "POST", "/charges"), _up(("gateway", "orders", "/orders"))),
    "test_timeout_two_hops_up": Expected(
        ("orders", "payments", "POST", "/charges"), _up(("gateway", "orders", "/orders"))),
    "test_retries": Expected(
        ("orders", "payments", "POST", "/charges"),
        (*_up(("gateway", "orders", "/orders")),
         ("orders", "payments", "/charges", "retry"),
         ("orders", "payments", "/charges", "retry"))),
    "test_4xx_became_500": Expected(
        ("orders", "payments", "POST", "/charges"), _up(("gateway", "orders", "/orders"))),
    "test_reset": Expected(
        ("orders", "stock", "POST", "/reserve"), _up(("gateway", "orders", "/orders"))),
    "test_two_failures": Expected(
        ("users", "profiles", "GET", "/profiles/1"), _up(("gateway", "users", "/users/1")),
        others=(("orders", "payments", "/charges", "independent"),)),
    "test_red_herring": Expected(
        ("orders", "payments", "POST", "/charges"), _up(("gateway", "orders", "/orders")),
        not_root=("gateway", "audit", "/events")),
    "test_node_in_the_chain": Expected(
        ("inventory", "payments", "POST", "/charges"),
        _up(("gateway", "inventory", "/reserve"))),
    "test_go_in_the_chain": Expected(
        ("shipping", "carrier", "POST", "/labels"), _up(("gateway", "shipping", "/ship"))),
}
SCENARIOS = list(EXPECTED)
NO_PROXY_ENV = "bank"  # the leaf started with no proxy setting at all (depth-3 cascade)
REUSED_PORT = ("test_4xx_became_500", "payments", "test_reset", "stock")


# -- one inner run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A call of the story's `calls`, with who really called whom."""

    number: int
    parent: int | None
    inference: str
    caller: str
    callee: str
    method: str
    path: str
    outcome: str
    start: int
    end: int
    by: str  # the service that really made it (its proxy user), or `tests`
    to: str  # the service that really received it (by the port it listened on)


@dataclass(frozen=True)
class Scenario:
    name: str
    story: dict  # the `tapproxy why --json` object of the test
    calls: list[Call]
    ports: dict[str, int]
    section: str  # the test's `tapproxy` section in pytest's report

    def first(self, by: str, to: str, method: str | None, path: str) -> Call | None:
        found = [c for c in self.calls if (c.by, c.to, c.path) == (by, to, path)
                 and method in (None, c.method)]
        return found[0] if found else None

    def expected_parent(self, call: Call) -> int | None:
        """The request its caller was handling when it started: the one call to the
        caller's service open then (each cascade sends a service one request at a time)."""
        if call.by == "tests":
            return None
        open_then = [c.number for c in self.calls if c.to == call.by
                     and c.start <= call.start <= c.end]
        return open_then[0] if len(open_then) == 1 else None

    def received_during(self, call: Call) -> list[Call]:
        """Calls the callee of `call` made while `call` was open."""
        return [c for c in self.calls if c.by == call.to and call.start <= c.start <= call.end]

    def table(self) -> str:
        """The calls as tapproxy told them, beside the truth, for assertion messages."""
        tags = {c["number"]: c["role"] for c in (*self.story["consequences"],
                                                 *self.story["others"])}
        root = self.story["root"]
        if root is not None:
            tags[root["number"]] = "ROOT"
        lines = [f"{self.name}: calls as told (parent, how) | truly by → to"]
        for c in self.calls:
            parent = f"{c.parent or '-'} {c.inference}"
            lines.append(f"  #{c.number:<2} {parent:<14} {c.caller} → {c.callee}  {c.method} "
                         f"{c.path}  {c.outcome}  {tags.get(c.number, '')}  | {c.by} → {c.to}")
        why = root["why"] if root else None
        lines.append(f"  root: {root and root['number']}  why: {why}")
        lines.append(f"  uncertain: {self.story.get('uncertain')}")
        lines.append("  section:")
        lines.extend(f"    {line}" for line in self.section.splitlines())
        return "\n".join(lines)

    def true_root(self) -> Call:
        want = EXPECTED[self.name].root
        call = self.first(want[0], want[1], want[2], want[3])
        assert call is not None, f"the scenario did not run as designed:\n{self.table()}"
        return call


def _sections(output: str) -> dict[str, str]:
    """Each failing test's `tapproxy` section, up to its `capture:` line."""
    parts = re.split(r"^_{3,} (test_\w+) _{3,}$", output, flags=re.M)
    found = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        m = re.search(r"^-+ tapproxy -+\n(.*?^capture: .*?)$", body, re.S | re.M)
        found[name] = m.group(1) if m else "(no tapproxy section)"
    return found


def _calls(story: dict, port_of: dict[str, int], ports: dict[str, int]) -> list[Call]:
    service_at = {port: name for name, port in ports.items()}
    out = []
    for c in story["calls"]:
        by = c["caller"] if c["caller"] in ports or c["caller"] == "tests" else f"?{c['caller']}"
        port = port_of.get(c["exchange_id"])
        out.append(Call(c["number"], c["parent"], c["parent_inference"], c["caller"],
                        c["callee"], c["method"], c["path"],
                        c["error"] or str(c["status"]), c["start_ns"],
                        c["start_ns"] + int(c["duration_ms"] * 1e6), by,
                        service_at.get(port, f"?{port}")))
    return out


def _run(tmp: Path, confdir: Path, go_binary: Path, *extra: str) -> dict[str, Scenario]:
    for f in (HERE / "suite").glob("*.py"):
        shutil.copy(f, tmp / f.name)
    capture = tmp / "run.tap"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(SCENARIO_SERVICES=str(HERE / "services"), SCENARIO_GO_BIN=str(go_binary),
               PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--tapproxy", "--tapproxy-capture", str(capture),
         f"--tapproxy-confdir={confdir}", "-p", "no:cacheprovider",
         "--tb=short", *extra],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert f"{len(EXPECTED)} failed" in output, output[-3000:]
    why = subprocess.run([sys.executable, "-m", "tapproxy", "why", str(capture), "--json"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert why.returncode == 0, why.stderr
    stories = {json.loads(line)["test"].split("::")[-1]: json.loads(line)
               for line in why.stdout.splitlines() if line.strip()}
    with open_capture(capture) as reader:
        port_of = {x.id: urlsplit(x.request.url).port for x in reader.exchanges()}
    all_ports = json.loads((tmp / "ports.json").read_text())
    sections = _sections(result.stdout)
    return {name: Scenario(name, stories[name], _calls(stories[name], port_of, all_ports[name]),
                           all_ports[name], sections.get(name, "(no tapproxy section)"))
            for name in EXPECTED if name in stories}


@pytest.fixture(scope="session")
def go_binary(tmp_path_factory) -> Path:
    """The Go hop, built once (the Go toolchain's own cache makes it quick)."""
    out = tmp_path_factory.mktemp("go") / "hop"
    built = subprocess.run(["go", "build", "-o", str(out), str(HERE / "services" / "hop.go")],
                           capture_output=True, text=True, timeout=120,
                           cwd=tmp_path_factory.getbasetemp())
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture(scope="session")
def named(tmp_path_factory, confdir, go_binary) -> dict[str, Scenario]:
    """The inner suite run as users run it: `pytest --tapproxy`."""
    return _run(tmp_path_factory.mktemp("named"), confdir, go_binary)


@pytest.fixture(scope="session")
def withheld(tmp_path_factory, confdir, go_binary) -> dict[str, Scenario]:
    """The same with process names withheld: callees are only addresses."""
    return _run(tmp_path_factory.mktemp("withheld"), confdir, go_binary,
                "--tapproxy-no-process-names")


def _scenario(run: dict[str, Scenario], name: str) -> Scenario:
    assert name in run, f"tapproxy why told nothing of {name}: {sorted(run)}"
    return run[name]


def _section_why(section: str) -> str:
    """The root's `why:` in the section, its wrapped lines joined."""
    lines = section.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("  why: ")), None)
    if start is None:
        return ""
    why = [lines[start].strip()]
    for ln in lines[start + 1:]:
        if not ln.startswith("    ") or ln.lstrip().startswith(("request:", "response:")):
            break
        why.append(ln.strip())
    return " ".join(why)


def _is_address(name: str) -> bool:
    return re.fullmatch(r"\[?[0-9a-fA-F.:]+\]?(:\d+)?", name) is not None


# -- with process names: the right story ------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_service_has_one_name_both_ways(named, name):
    """A service that calls is its proxy user as callee too; one that never calls has a
    name of its own (its executable made unique, or its proxy user), never an address."""
    s = _scenario(named, name)
    callers = {c.by for c in s.calls}
    assert all(not c.by.startswith("?") for c in s.calls), s.table()
    names: dict[str, set[str]] = {}
    for c in s.calls:
        names.setdefault(c.to, set()).add(c.callee)
    for service, seen in names.items():
        assert len(seen) == 1, f"{service} has two names {seen}\n{s.table()}"
        [given] = seen
        if service in callers:
            assert given == service, f"{service} is called {given!r}\n{s.table()}"
        else:
            assert not _is_address(given), f"{service} is named by address\n{s.table()}"
    given_names = [next(iter(seen)) for seen in names.values()]
    assert len(set(given_names)) == len(given_names), s.table()
    assert "tests" not in given_names, s.table()


@pytest.mark.parametrize("name", SCENARIOS)
def test_calls_nest_under_the_request_that_caused_them(named, name):
    s = _scenario(named, name)
    wrong = [c.number for c in s.calls if c.parent != s.expected_parent(c)]
    assert not wrong, f"calls {wrong} under the wrong parent\n{s.table()}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_root_is_the_true_root(named, name):
    s = _scenario(named, name)
    root, truth = s.story["root"], s.true_root()
    assert root is not None and root["number"] == truth.number, (
        f"the root should be #{truth.number}\n{s.table()}")
    line = f"root #{truth.number} {truth.caller} → {truth.callee}  {truth.method} {truth.path}"
    assert any(ln.startswith(line) for ln in s.section.splitlines()), (
        f"the section should say {line!r}\n{s.table()}")
    assert s.story.get("uncertain") is None, s.table()


@pytest.mark.parametrize("name", SCENARIOS)
def test_consequences_are_the_cascade_and_the_retries(named, name):
    s = _scenario(named, name)
    want = EXPECTED[name]
    by_number = {c.number: c for c in s.calls}

    def told(entries: list[dict]) -> Counter:
        return Counter((by_number[e["number"]].by, by_number[e["number"]].to,
                        by_number[e["number"]].path, e["role"]) for e in entries)

    assert told(s.story["consequences"]) == Counter(want.consequences), s.table()
    others = told(s.story["others"])
    assert all(others[o] for o in want.others), f"others should hold {want.others}\n{s.table()}"
    if want.not_root:
        herring = s.first(*want.not_root[:2], None, want.not_root[2])
        assert herring is not None and herring.outcome == "500", s.table()
        assert s.story["root"] is None or s.story["root"]["number"] != herring.number, (
            s.table())
        assert herring.number not in {c["number"] for c in s.story["consequences"]}, s.table()


def test_a_leaf_that_never_calls_is_named_by_its_process(named):
    """bank has no proxy setting and makes no call: nothing but its process can name it."""
    s = _scenario(named, "test_depth3_cascade")
    truth = s.true_root()
    assert truth.to == NO_PROXY_ENV, s.table()
    others = {c.callee for c in s.calls if c.to != NO_PROXY_ENV} | {"tests"}
    assert not _is_address(truth.callee) and truth.callee not in others, s.table()


def test_a_reused_port_names_the_process_behind_it_each_time(named):
    """payments, then stock, on one port in consecutive tests: two processes, two names."""
    first_test, first, second_test, second = REUSED_PORT
    a, b = _scenario(named, first_test), _scenario(named, second_test)
    assert a.ports[first] == b.ports[second], "the port was not reused: the suite is wrong"
    [name_a] = {c.callee for c in a.calls if c.to == first}
    [name_b] = {c.callee for c in b.calls if c.to == second}
    assert name_a != name_b, f"{a.table()}\n{b.table()}"
    assert not _is_address(name_a) and not _is_address(name_b), f"{a.table()}\n{b.table()}"


# -- with names withheld: never a wrong answer ------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_without_names_the_root_is_true_or_uncertain(withheld, name):
    """The true root, or no root and the candidates (the true one among them) with what
    would settle it; never another call."""
    s = _scenario(withheld, name)
    truth, root = s.true_root(), s.story["root"]
    uncertain = s.story.get("uncertain")
    roots_in_section = [ln for ln in s.section.splitlines() if ln.startswith("root #")]
    if root is None:
        assert uncertain, f"no root and no word why\n{s.table()}"
        assert truth.number in uncertain["candidates"], s.table()
        assert uncertain["reason"], s.table()
        addresses = {f"127.0.0.1:{p}" for p in s.ports.values()}
        assert uncertain["settle"] and all(any(a in step for a in addresses)
                                           for step in uncertain["settle"]), s.table()
        assert not roots_in_section, s.table()
    else:
        assert root["number"] == truth.number, (
            f"a wrong root: should be #{truth.number} or none\n{s.table()}")
        assert roots_in_section and roots_in_section[0].startswith(f"root #{truth.number} "), (
            s.table())


@pytest.mark.parametrize("name", SCENARIOS)
def test_without_names_no_call_is_nested_wrongly(withheld, name):
    """A call is placed under a request only where that is what happened (one open
    request fits), and says it was `inferred`; the rest stay unplaced."""
    s = _scenario(withheld, name)
    wrong = [c.number for c in s.calls
             if c.parent is not None and c.parent != s.expected_parent(c)]
    assert not wrong, f"calls {wrong} under the wrong parent\n{s.table()}"
    inferred = [c.number for c in s.calls if c.parent is not None
                and c.inference != "inferred"]
    assert not inferred, f"calls {inferred} nested without saying how\n{s.table()}"


# -- both: "it made no calls" only when it made none -------------------------------------


@pytest.mark.parametrize("mode", ["named", "withheld"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_made_no_calls_is_never_said_of_a_call_that_made_some(request, mode, name):
    s = _scenario(request.getfixturevalue(mode), name)
    by_number = {c.number: c for c in s.calls}
    said = []
    root = s.story["root"]
    if root is not None:
        said.append((root["number"], root["why"]))
        said.append((root["number"], _section_why(s.section)))
    said += [(c["number"], c["reason"]) for c in (*s.story["consequences"],
                                                  *s.story["others"])]
    false = [(n, text) for n, text in said if "made no calls" in text
             and s.received_during(by_number[n])]
    assert not false, f"said 'made no calls' of calls that made some: {false}\n{s.table()}"
