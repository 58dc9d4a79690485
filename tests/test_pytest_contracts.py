"""Contracts in the failure story, the way users meet them: a suite of two real aiohttp
services (gateway → inventory) run by pytest through tapproxy in a subprocess, where
inventory answers 200 with `qty` drifted to a string and the gateway turns that into a
500. `why --contract` and `--tapproxy-contract` name the 200 the root, by its field."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tapproxy.capture import TestCase, open_capture
from tests.cli.test_record_cli import record  # noqa: F401 - the fixture
from tests.conftest import run_cli

DATA = Path(__file__).parent / "contract" / "data" / "story"
DRIFTED = "test_stock.py::test_checkout_drifted"
LOOKUP = "test_stock.py::test_stock_lookup"


@pytest.fixture
def suite(pytester: pytest.Pytester, confdir: Path):
    shutil.copy(DATA / "stock_services.py", pytester.path)
    shutil.copy(DATA / "stock.yaml", pytester.path)
    shutil.copy(DATA / "suite_conftest.py", pytester.path / "conftest.py")
    shutil.copy(DATA / "suite_tests.py", pytester.path / "test_stock.py")

    def run(*args: str, proxy: str = "--tapproxy") -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", proxy, f"--tapproxy-confdir={confdir}",
            f"--tapproxy-capture={pytester.path / 'run.tap'}", *args, timeout=120)

    return run


def _section(text: str, test: str) -> list[str]:
    """The tapproxy section of `test`'s failure report, ports and times made fixed."""
    report = text.split(f"_ {test.split('::')[1]} _", 1)[1]
    m = re.search(r"^-+ tapproxy -+\n(.*?)\n(?==+ |_+ |- generated)", report, re.S | re.M)
    assert m, report
    section = re.sub(r" +\d+(\.\d+)? ms\b", " <ms>", m.group(1))
    section = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", section)
    return section.splitlines()


def _summary(text: str) -> list[str]:
    """The run's tapproxy summary, a command continued over lines made one."""
    summary = text.rsplit("- tapproxy -", 1)[1].split("\n=")[0].strip("-\n")
    return re.sub(r" \\\n +", " ", summary).splitlines()


@pytest.mark.slow
def test_why_with_the_contract_names_the_200_with_the_broken_field_as_root(suite, pytester):
    suite().assert_outcomes(passed=2, failed=1)
    capture = pytester.path / "run.tap"

    plain = run_cli("why", capture, "--test", DRIFTED)
    assert "root #1 tests → gateway  POST /checkout  500" in plain.stdout, plain.stdout

    told = run_cli("why", capture, "--test", DRIFTED, "--contract", "stock.yaml",
                   cwd=pytester.path)
    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    assert lines[3] == "root #2 gateway → inventory  GET /stock/A-1  200", told.stdout
    assert lines[4:6] == ['  why: contract mismatch: /qty: expected integer, got string "3"; it '
                          'made no', "    calls"], told.stdout
    at = lines.index("contract mismatches (1):")
    assert lines[at + 1] == '  #2 response /qty: expected integer, got string "3"'
    assert lines[at + 2].startswith("      contract: stock.yaml:13:"), lines[at + 2]
    assert "  #1 tests → gateway 500: propagated from #2" in lines
    assert all(len(line) <= 80 for line in lines if str(capture.with_suffix("")) not in line)

    data = json.loads(run_cli("why", capture, "--test", DRIFTED, "--json", "--contract",
                              "inventory=stock.yaml", cwd=pytester.path).stdout)
    assert data["root"]["number"] == 2
    [m] = data["root"]["contract_mismatches"]
    assert (m["where"], m["side"], m["actual"], m["callee"]) == (
        "/qty", "response", 'string "3"', "inventory")
    assert m["exchange_id"] == data["root"]["exchange_id"]

    # An OpenAPI document tells the same story, located at its schema's line.
    told = run_cli("why", capture, "--test", DRIFTED, "--json", "--contract",
                   f"inventory={DATA / 'stock.openapi.yaml'}", cwd=pytester.path)
    data = json.loads(told.stdout)
    assert data["root"]["number"] == 2, told.stdout + told.stderr
    assert [(m["where"], m["contract"]["file"]) for m in data["root"]["contract_mismatches"]
            ] == [("/qty", str(DATA / "stock.openapi.yaml"))]

    # Every test with a failure: the passing lookup broke the contract too (its own call).
    every = run_cli("why", capture, "--contract", "stock.yaml", cwd=pytester.path)
    assert "test_stock.py::test_stock_lookup  passed" in every.stdout, every.stdout
    assert "2 of 3 tests with a failure to explain" in every.stderr

    bad = run_cli("why", capture, "--contract", "nowhere.yaml", cwd=pytester.path)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.strip().splitlines() == [
        "tapproxy: error: nowhere.yaml: cannot read: No such file or directory"], bad.stderr


@pytest.mark.slow
def test_a_failing_tests_section_passing_tests_summary_and_junit(suite, pytester):
    result = suite("--tapproxy-contract", "inventory=stock.yaml", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    section = _section(out, DRIFTED)
    assert section[:4] == [
        "  1 tests → gateway  POST /checkout                     500 <ms>  propagated",
        "  2   gateway → inventory  GET /stock/A-1               200 <ms>  ◀ root",
        "root #2 gateway → inventory  GET /stock/A-1  200",
        '  why: contract mismatch: /qty: expected integer, got string "3"; it made no',
    ], "\n".join(section)
    at = section.index("contract mismatches (1):")
    assert section[at + 1] == '  #2 response /qty: expected integer, got string "3"'
    capture = pytester.path / "run.tap"
    stem = str(capture.with_suffix(""))
    assert all(len(line) <= 80 for line in section if stem not in line), section

    summary = _summary(out)
    assert summary[:3] == [DRIFTED, "  gateway → inventory GET /stock/A-1 200: contract "
                                    "mismatch: /qty: expected",
                           '    integer, got string "3"; it made no calls'], summary
    start = summary.index("contract mismatches in passing tests: 1 in 1 test")
    assert summary[start + 1:start + 3] == [
        LOOKUP, '  tests → inventory GET /stock/A-1: /qty: expected integer, got string "3"']
    assert summary[start + 3:start + 5] == [
        "all of them:", f"  tapproxy check {capture} --contract inventory=stock.yaml"]
    # The command the summary gives lists them all.
    full = run_cli("check", capture, "--contract", "inventory=stock.yaml", cwd=pytester.path)
    assert full.returncode == 1, full.stderr
    assert LOOKUP in full.stdout and DRIFTED in full.stdout, full.stdout
    assert "every failing test explained again:" in summary
    assert f"  tapproxy why {capture} --contract inventory=stock.yaml" in summary

    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    assert cases["test_stock_lookup"] == {"tapproxy_contract_mismatch": (
        'tests → inventory GET /stock/A-1: /qty: expected integer, got string "3"')}
    assert cases["test_checkout"] == {}
    drifted = cases["test_checkout_drifted"]
    assert drifted["tapproxy_contract_mismatch"] == (
        'gateway → inventory GET /stock/A-1: /qty: expected integer, got string "3"')
    assert drifted["tapproxy_first_failure"].startswith(
        "gateway → inventory GET /stock/A-1 200: contract mismatch: /qty")


@pytest.mark.slow
def test_strict_contracts_make_a_passing_test_that_broke_one_an_error(suite, pytester):
    pytester.makeini("[pytest]\ntapproxy_contracts = stock.yaml\n"
                     "tapproxy_contract_strict = true\n")
    result = suite("--junitxml=junit.xml")
    # pytest counts a test that errs in teardown as passed (its call) and an error.
    result.assert_outcomes(passed=2, failed=1, errors=1)
    out = result.stdout.str()
    assert "ERROR at teardown of test_stock_lookup" in out, out
    assert "tapproxy: the test's calls broke a contract (--tapproxy-contract-strict):\n" \
           '  tests → inventory GET /stock/A-1: /qty: expected integer, got string "3"' in out
    assert f"{LOOKUP}\n  contract: tests → inventory GET /stock/A-1: /qty: expected" \
           in out, out
    assert "contract mismatches in passing tests" not in out
    with open_capture(pytester.path / "run.tap") as reader:
        outcomes = {r.name: r.outcome for r in reader if isinstance(r, TestCase)}
    assert outcomes == {"test_stock.py::test_checkout": "passed", DRIFTED: "failed",
                        LOOKUP: "error"}
    [case] = [c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")
              if c.get("name") == "test_stock_lookup"]
    assert case.find("error") is not None


def test_a_bad_contract_stops_the_run_before_any_test(suite, pytester, monkeypatch):
    (pytester.path / "broken.yaml").write_text("tapproxy: 1\ninteractions: {}\n")
    result = suite("--tapproxy-contract", "broken.yaml")
    assert result.ret == 4
    [line] = [x for x in result.stderr.lines if x.strip()]
    assert line.startswith("ERROR: tapproxy: --tapproxy-contract: broken.yaml:2:"), line
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--tapproxy-contract", "stock.yaml")
    assert result.ret == 4
    assert "--tapproxy-contract checks recorded calls: run with --tapproxy" in \
        result.stderr.str()
    # The ini option's files are relative to the ini file, not to where pytest runs.
    pytester.makeini("[pytest]\ntapproxy_contracts = broken.yaml\n")
    (pytester.path / "sub").mkdir()
    monkeypatch.chdir(pytester.path / "sub")
    result = suite()
    assert result.ret == 4
    assert f"tapproxy: ini tapproxy_contracts: {pytester.path / 'broken.yaml'}:2:" in \
        result.stderr.str(), result.stderr.str()


@pytest.mark.slow
def test_under_xdist_each_workers_mismatches_reach_the_summary(suite, pytester):
    result = suite("-n", "2", "--tapproxy-contract", "stock.yaml")
    result.assert_outcomes(passed=2, failed=1)
    summary = _summary(result.stdout.str())
    start = summary.index("contract mismatches in passing tests: 1 in 1 test")
    assert summary[start + 1] == LOOKUP, summary
    assert "--tapproxy-contract" not in result.stderr.str()


@pytest.mark.slow
def test_with_a_running_tapproxy_the_tests_calls_come_through_its_control_api(
        suite, pytester, record):  # noqa: F811
    rec = record()
    result = suite("--tapproxy-contract", "stock.yaml", "--junitxml=junit.xml",
                   proxy=f"--tapproxy-url={rec.control_url}")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert _section(out, DRIFTED)[2] == "root #2 gateway → inventory  GET /stock/A-1  200"
    summary = _summary(out)
    start = summary.index("contract mismatches in passing tests: 1 in 1 test")
    assert summary[start + 1] == LOOKUP, summary
    assert f"  tapproxy check {rec.output} --contract stock.yaml" in summary, summary
    [case] = [c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")
              if c.get("name") == "test_stock_lookup"]
    assert [p.get("name") for p in case.iter("property")] == ["tapproxy_contract_mismatch"]
