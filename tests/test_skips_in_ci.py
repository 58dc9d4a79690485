"""Under CI=true a test that skips for want of a tool scripts/setup installs fails the
run (the set-up promised the tool); a skip for want of a kernel permission stays a
skip, and every such skip is listed in the run's summary."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

INNER = """
from tests.conftest import missing_permission, missing_tool, require_tool

def test_needs_a_tool():
    missing_tool("frobnicate is not installed (scripts/setup installs it with apt)")

def test_needs_a_tool_by_name():
    require_tool("no-such-tool-anywhere", "the no-such-tool package")

def test_needs_root():
    missing_permission("cannot mount a small tmpfs here (needs root)")

def test_fine():
    pass
"""


@pytest.fixture
def run_inner(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=INNER)

    def run(ci: str | None):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        return pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    return run


def test_under_ci_a_missing_tool_fails_and_a_missing_permission_is_listed(run_inner):
    result = run_inner("true")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    out = result.stdout.str()
    assert "frobnicate is not installed (scripts/setup installs it with apt); CI=true" in out
    assert "no-such-tool-anywhere is not installed (scripts/setup installs the no-such-tool " \
        "package)" in out
    summary = section(out)
    assert "test_inner.py::test_needs_root: cannot mount a small tmpfs here (needs root)" \
        in summary


def test_outside_ci_both_skip_and_the_permission_is_still_listed(run_inner):
    result = run_inner(None)
    result.assert_outcomes(passed=1, skipped=3)
    summary = section(result.stdout.str())
    assert "test_inner.py::test_needs_root: cannot mount a small tmpfs" in summary
    assert "frobnicate" not in summary


def section(out: str) -> str:
    """The lines of the run's permission-skip section."""
    after = out.split(" skipped for want of a kernel permission ")[1].split("\n", 1)[1]
    return after.split("\n=")[0]
