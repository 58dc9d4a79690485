"""The pytest section's service log lines and the end-of-run summary: 80 columns, the
error headline kept, and the commands that show everything whole."""

from __future__ import annotations

from tapproxy.capture.model import ServiceLog
from tapproxy.report.section import ServiceWindow, failure_section, run_summary
from tests.spans.build import MS, T0

TEST = "tests/test_shop.py::test_declined_card"


def _logs(lines: list[tuple[str, str]]) -> list[ServiceLog]:
    return [ServiceLog("payments", stream, line, T0 + i * MS)
            for i, (stream, line) in enumerate(lines)]


def test_the_error_headline_survives_when_log_lines_are_cut() -> None:
    logs = _logs([("stderr", "ERROR card declined: issuer said no " + "x" * 100),
                  ("stderr", "Traceback (most recent call last):"),
                  *[("stdout", f"GET /health 200 #{i}") for i in range(30)]])
    text = failure_section(["story"], T0, [ServiceWindow("payments", logs, ())],
                           [("capture", "/tmp/run.tap")], test=TEST)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert any("! ERROR card declined: issuer said no" in line for line in lines), text
    assert any("! Traceback (most recent call last):" in line for line in lines), text
    assert any("GET /health 200 #29" in line for line in lines)  # the latest of the rest
    assert not any("GET /health 200 #0" in line for line in lines)
    assert "  … 20 of 32 lines left out (error lines kept)" in lines
    # The ERROR line comes first, as it happened.
    assert [i for i, line in enumerate(lines) if "ERROR card" in line] < \
        [i for i, line in enumerate(lines) if "#29" in line]
    assert lines[-2:] == ["  tapproxy show /tmp/run.tap --logs --test \\",
                          "      tests/test_shop.py::test_declined_card --service payments"]


def test_the_end_of_run_summary_fits_80_columns() -> None:
    first = ("orders → payments POST /charges/{id}/captures 500: a 400 its caller #4 "
             "gateway → orders turned into 500; attempt 1 of 3; every attempt failed")
    lines = run_summary([(TEST, first), ("tests/test_" + "x" * 90 + ".py::test_y", first)],
                        1, "/home/me/shop/.tapproxy/20261204-172553.tap")
    assert max(len(line) for line in lines) <= 80, lines
    assert lines[0] == TEST
    assert lines[1].startswith("  orders → payments POST /charges/{id}/captures 500: a")
    assert " ".join(lines[1:3]).split() == first.split()[:len(" ".join(lines[1:3]).split())]
    assert "1 test sent nothing through the proxy (see the warnings)" in lines
    assert "capture: /home/me/shop/.tapproxy/20261204-172553.tap" in lines
    assert lines[-1] == "  tapproxy why /home/me/shop/.tapproxy/20261204-172553.tap"


def test_no_command_for_log_lines_when_no_service_logged_any() -> None:
    quiet = ServiceWindow("prices", [], ())
    text = failure_section(["story"], T0, [quiet], [("capture", "/tmp/run.tap")], test=TEST)
    assert "  (no log lines while the test ran)" in text.splitlines()
    assert "the log lines whole" not in text and "--logs" not in text


def test_the_command_names_the_one_service_that_logged() -> None:
    windows = [ServiceWindow("prices", [], ()),
               ServiceWindow("payments", _logs([("stderr", "ERROR declined")]), ())]
    text = failure_section(["story"], T0, windows, [("capture", "/tmp/run.tap")], test=TEST)
    assert text.splitlines()[-1].endswith("--service payments")
