"""The report `pytest --tapproxy` leaves beside its capture, opened in headless Chromium.

The sample suite's services (gateway → orders → payments, aiohttp processes started by
`tapproxy_service`) run through the real proxy; the declined card is a cascade failure
with a line on payments' stderr. Its report shows the root, the cascade, the services'
log lines and resource samples on the waterfall's time axis.

With TAPPROXY_SCREENSHOT=/ABSOLUTE/PATH the page is also saved there (how docs/report.png
is made).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report.test_html_report import blocks
from tests.report.test_report_browser import Opened, browser  # noqa: F401 - the fixture
from tests.test_pytest_plugin import suite  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_the_pytest_report_tells_the_cascade_with_logs_and_resources(suite, pytester,  # noqa: F811
                                                                     browser):  # noqa: F811
    result = suite("test_shop.py", "-k", "checkout or declined")
    result.assert_outcomes(passed=1, failed=1)
    report = pytester.path / "run.html"
    assert f"report: {report}" in result.stdout.str()
    summary = blocks(report.read_text())["tap-summary"]
    names = [t["name"] for t in summary["tests"]]
    assert names == ["test_shop.py::test_checkout", "test_shop.py::test_declined_card"]
    assert summary["tests"][1]["story"]["root"]["why"] == "status 500; it made no calls"
    services = summary["services"]
    assert [services[s] for s, _, stderr, line in summary["logs"]
            if stderr and "declined" in line] == ["payments"]
    assert {services[s[0]] for s in summary["samples"]} >= {"gateway", "orders", "payments"}

    opened = Opened(browser, report)
    try:
        page = opened.page
        assert page.locator("#tests .test.selected .tname").inner_text() == names[1]
        assert page.locator("#waterfall .row").count() == 3
        assert "orders → payments" in page.locator("#waterfall .row.role-root").inner_text()
        # payments' stderr line on the same time axis as the calls, and CPU samples
        tracks = page.locator("#tracks .track:not(.axis)")
        assert "payments" in tracks.all_inner_texts()[-1] or any(
            "payments" in t for t in tracks.all_inner_texts())
        assert page.locator("#tracks .logtick.stderr").count() >= 1
        assert page.locator("#tracks svg.cpu polyline").count() >= 1
        assert "ERROR card declined" in page.locator("#logs").inner_text()
        shot = os.environ.get("TAPPROXY_SCREENSHOT")
        if shot:
            page.set_viewport_size({"width": 1400, "height": 900})
            page.screenshot(path=str(Path(shot).resolve()))
    finally:
        opened.close()
