"""Command-line usage errors, run as the real command: click's usage message, exit 2."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

USAGE_ERRORS = [
    ("no-arguments", [], None),
    ("missing-argument", ["show"], "Missing argument"),
    ("unknown-command", ["bogus"], "No such command 'bogus'"),
    ("unknown-flag", ["show", "--bogus", "x.tap"], "No such option: --bogus"),
    ("unknown-root-flag", ["--bogus"], "No such option: --bogus"),
    ("missing-option-value", ["export", "x.tap", "--har"], "requires an argument"),
    ("idle-timeout-not-a-number", ["record", "-o", "x.tap", "--idle-timeout", "abc"],
     "Invalid value for '--idle-timeout'"),
    ("idle-timeout-zero", ["record", "-o", "x.tap", "--idle-timeout", "0"],
     "Invalid value for '--idle-timeout'"),
    ("idle-timeout-negative", ["record", "-o", "x.tap", "--idle-timeout", "-1"],
     "Invalid value for '--idle-timeout'"),
]


@pytest.mark.parametrize(("args", "message"),
                         [pytest.param(a, m, id=i) for i, a, m in USAGE_ERRORS])
def test_usage_errors_are_clicks_message_and_exit_2(tmp_path, args, message):
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    if message is None:  # no arguments at all: the help, as click gives it
        assert lines[0].startswith("Usage: tapproxy") and "Commands:" in out.stderr
    else:
        [error] = [line for line in lines if line.startswith("Error: ")]
        assert message in error
        assert error == lines[-1]
    assert not (tmp_path / "x.tap").exists()  # nothing started
