"""The pytest plugin, run the way users run it: a real suite of three aiohttp services
started as processes through tapproxy_service, run by pytest in a subprocess (pytester)."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tapproxy.capture import Exchange, ResourceSample, ServiceLog, TestCase, open_capture
from tests.cli.test_record_cli import record  # noqa: F401 - the fixture
from tests.conftest import run_cli

SUITE = Path(__file__).parent / "plugin_suite"


@pytest.fixture
def suite(pytester: pytest.Pytester, confdir: Path):
    for f in SUITE.iterdir():
        if f.suffix == ".py":
            shutil.copy(f, pytester.path / f.name)

    def run(*args: str, proxy: str = "--tapproxy") -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", proxy, f"--tapproxy-confdir={confdir}",
            f"--tapproxy-capture={pytester.path / 'run.tap'}", *args, timeout=120)

    return run


def _section(text: str) -> str:
    """The tapproxy section of the failure report, with times and figures made fixed."""
    m = re.search(r"^-+ tapproxy -+\n(.*?)\n(?==+ |- generated)", text, re.S | re.M)
    assert m, text
    section = m.group(1)
    section = re.sub(r" +\d+(\.\d+)? ms\b", " <ms>", section)
    section = re.sub(r" +\+\d+ms", " +<t>", section)
    section = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", section)
    section = re.sub(r" \\\n +", " ", section)  # a command continued over lines: one
    section = re.sub(r"--exchange [0-9a-f-]{13}\b", "--exchange <id>", section)
    section = re.sub(r"cpu peak \d+%, rss peak [\d.]+ MiB, \d+ threads?, \d+ fds "
                     r"\(\d+ samples?\)", "<resources>", section)
    return section


def _records(path: Path) -> list:
    with open_capture(path) as r:
        return list(r)


def test_a_failing_test_explains_itself_in_its_report_and_junit(suite, pytester):
    result = suite("-k", "declined", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    capture = pytester.path / "run.tap"
    assert _section(result.stdout.str()) == f"""\
  1 tests → gateway  POST /checkout                     502 <ms>  propagated
  2   gateway → orders  POST /orders                    502 <ms>  propagated
  3     orders → payments  POST /charges                500 <ms>  ◀ root
root #3 orders → payments  POST /charges  500
  why: status 500; it made no calls
  request:  POST http://127.0.0.1:<port>/charges
            {{"card": "bad", "amount": 5}}
  response: 500 Internal Server Error
            {{"error": "declined"}}
  in full:  tapproxy show {capture} --exchange <id>
consequences:
  #1 tests → gateway 502: propagated from #3
  #2 gateway → orders 502: propagated from #3
  propagated: gateway 502, orders 502

payments: <resources>
 +<t> ! ERROR card declined: issuer said no

capture: {capture}
the log lines whole (lines above are cut to 80 columns):
  tapproxy show {capture} --logs --test test_shop.py::test_declined_card --service payments"""
    raw = re.search(r"^-+ tapproxy -+\n(.*?)\n(?==+ |- generated)", result.stdout.str(),
                    re.S | re.M).group(1)
    assert all(len(line) <= 80 for line in raw.splitlines() if str(capture) not in line)
    # The section's references resolve in the capture the run leaves behind.
    ref = re.search(r"--exchange ([0-9a-f-]{13})\b", raw).group(1)
    shown = run_cli("show", capture, "--exchange", ref)
    assert shown.stdout.startswith("exchange ") and "→ payments" in shown.stdout.split(
        "\n")[0], shown.stdout + shown.stderr
    logs = run_cli("show", capture, "--logs", "--test", "test_shop.py::test_declined_card",
                   "--service", "payments").stdout
    assert "payments ! ERROR card declined: issuer said no" in logs, logs
    summary = result.stdout.str().rsplit("- tapproxy -", 1)[1].split("\n=")[0]
    assert "test_shop.py::test_declined_card\n  orders → payments POST /charges 500" in summary
    assert all(len(line) <= 80 for line in summary.splitlines() if str(capture) not in line)

    tree = ET.parse(pytester.path / "junit.xml")
    [case] = tree.iter("testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {"tapproxy_capture": str(capture),
                     "tapproxy_first_failure": "orders → payments POST /charges 500: "
                                               "status 500; it made no calls"}

    records = _records(capture)
    [test] = [r for r in records if isinstance(r, TestCase)]
    assert (test.name, test.outcome) == ("test_shop.py::test_declined_card", "failed")
    assert {x.test for x in records if isinstance(x, Exchange)} == {test.name}
    logs = [(r.service, r.stream, r.line) for r in records if isinstance(r, ServiceLog)]
    assert ("payments", "stderr", "ERROR card declined: issuer said no") in logs
    assert {r.service for r in records if isinstance(r, ResourceSample)} == {
        "gateway", "orders", "payments"}
    assert not [p for p in pytester.path.iterdir() if p.name.startswith(".run.tap")]


def test_a_run_where_every_test_passes_prints_nothing_of_tapproxy(suite, pytester):
    result = suite("-k", "not declined and not nothing")
    result.assert_outcomes(passed=3)
    # After pytest's header: the progress lines and the summary, nothing else.
    lines = result.outlines
    body = [line for line in lines[lines.index("collected 5 items / 2 deselected / 3 selected")
                                   + 1:] if line.strip()]
    assert [re.sub(r" +\[.*|=+ ?| in [\d.]+s", "", line).strip() for line in body] == [
        "test_async.py .", "test_shop.py ..", "3 passed, 2 deselected"]
    assert result.errlines == []
    outcomes = {r.name: r.outcome for r in _records(pytester.path / "run.tap")
                if isinstance(r, TestCase)}
    assert outcomes == {"test_shop.py::test_checkout": "passed",
                        "test_shop.py::test_health_from_an_app_factory": "passed",
                        "test_async.py::test_async_checkout": "passed"}


def test_xdist_workers_record_one_merged_capture_with_every_test(suite, pytester):
    result = suite("-n", "2")
    result.assert_outcomes(passed=4, failed=1, warnings=1)
    out = result.stdout.str()
    assert "- tapproxy -" in out  # the failure section came back from its worker
    # A test that sent nothing is named: the proxy was bypassed or not used.
    result.stdout.fnmatch_lines(["test_shop.py::test_sends_nothing",
                                 "*tapproxy: nothing went through the proxy*"])
    records = _records(pytester.path / "run.tap")
    outcomes = {r.name: r.outcome for r in records if isinstance(r, TestCase)}
    assert outcomes == {"test_shop.py::test_checkout": "passed",
                        "test_shop.py::test_declined_card": "failed",
                        "test_shop.py::test_health_from_an_app_factory": "passed",
                        "test_shop.py::test_sends_nothing": "passed",
                        "test_async.py::test_async_checkout": "passed"}
    by_test = {}
    for x in records:
        if isinstance(x, Exchange):
            by_test.setdefault(x.test, []).append(x)
    assert {t: len(xs) for t, xs in by_test.items()} == {
        "test_shop.py::test_checkout": 3, "test_shop.py::test_declined_card": 3,
        "test_shop.py::test_health_from_an_app_factory": 1,
        "test_async.py::test_async_checkout": 3}
    assert not [p for p in pytester.path.iterdir() if p.name.startswith(".run.tap")]


def test_a_running_tapproxy_is_used_through_its_control_api(suite, pytester, record):  # noqa: F811
    rec = record()
    result = suite("-k", "checkout or declined", proxy=f"--tapproxy-url={rec.control_url}")
    result.assert_outcomes(passed=2, failed=1)
    section = _section(result.stdout.str())
    assert section.splitlines()[:4] == [
        "  1 tests → gateway  POST /checkout                     502 <ms>  propagated",
        "  2   gateway → orders  POST /orders                    502 <ms>  propagated",
        "  3     orders → payments  POST /charges                500 <ms>  ◀ root",
        "root #3 orders → payments  POST /charges  500"]
    code, _, _ = rec.stop()
    assert code == 0
    outcomes = {r.name: r.outcome for r in _records(rec.output) if isinstance(r, TestCase)}
    assert outcomes == {"test_shop.py::test_checkout": "passed",
                        "test_shop.py::test_declined_card": "failed",
                        "test_async.py::test_async_checkout": "passed"}
    # The plugin's own capture holds what it recorded itself: the services' output.
    assert any(isinstance(r, ServiceLog) for r in _records(pytester.path / "run.tap"))


def test_a_service_that_never_listens_fails_its_test_in_one_line(pytester, confdir):
    pytester.makepyfile(test_broken="""
        import sys

        def test_broken(tapproxy_service):
            tapproxy_service("broken", [sys.executable, "-c", "print('{port}', 'no'); exit(3)"])
    """)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--tapproxy", f"--tapproxy-confdir={confdir}",
        f"--tapproxy-capture={pytester.path / 'run.tap'}", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tapproxy: service broken exited with code 3 before "
                                 "listening on 127.0.0.1:* (its port {port})"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    logs = [r.line for r in _records(pytester.path / "run.tap") if isinstance(r, ServiceLog)]
    assert logs[0].endswith(" no")


def test_a_service_started_with_port_is_fronted_and_its_bare_callers_named(suite, pytester):
    """port=P: the service listens privately, tapproxy on P. A caller with no proxy
    setting at all (orders, its proxy env emptied) is recorded, named by its process."""
    pytester.makepyfile(test_fronted="""
        import json, sys, urllib.request
        from tapproxy.proxy.fronting import free_loopback_port

        def test_fronted(tapproxy_service, tapproxy):
            port = free_loopback_port()
            payments = tapproxy_service(
                "payments", [sys.executable, "shop_services.py", "payments", "{port}"],
                port=port)
            assert payments.url == f"http://127.0.0.1:{port}"
            bare = {"HTTP_PROXY": "", "http_proxy": "", "HTTPS_PROXY": "", "https_proxy": ""}
            orders = tapproxy_service(
                "orders", [sys.executable, "shop_services.py", "orders", "{port}"],
                env={**bare, "PAYMENTS_URL": payments.url})
            req = urllib.request.Request(f"{orders.url}/orders", method="POST",
                                         data=json.dumps({"card": "ok"}).encode(),
                                         headers={"content-type": "application/json"})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            opener.open(req, timeout=30).read()
            x = tapproxy.assert_called(callee="payments", path="/charges")
            assert x.caller.name == "orders"
    """)
    result = suite("-k", "fronted")
    result.assert_outcomes(passed=1)


OUTSIDE = """
    import json, os, socket, subprocess, sys, time, urllib.error, urllib.request
    from tapproxy.proxy.fronting import free_loopback_port

    def test_outside(tapproxy_service, tapproxy):
        payments = tapproxy_service(
            "payments", [sys.executable, "shop_services.py", "payments", "{port}"])
        port = free_loopback_port()  # orders, started by the test itself, calling as orders
        env = {**os.environ, **tapproxy.env_for("orders"), "PAYMENTS_URL": payments.url}
        orders = subprocess.Popen([sys.executable, "shop_services.py", "orders", str(port)],
                                  env=env)
        try:
            while socket.socket().connect_ex(("127.0.0.1", port)):
                time.sleep(0.05)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler(
                {"http": tapproxy.env["HTTP_PROXY"]}))
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/orders", method="POST",
                data=json.dumps({"card": "bad"}).encode(),
                headers={"content-type": "application/json"})
            try:
                opener.open(req, timeout=30)
            except urllib.error.HTTPError as e:
                assert e.code == 201, f"orders at port {port}"
        finally:
            orders.terminate()
            orders.wait()
"""


def test_a_callee_started_by_the_test_itself_is_named_by_its_process(suite, pytester):
    pytester.makepyfile(test_outside=OUTSIDE)
    result = suite("-k", "outside")
    result.assert_outcomes(failed=1)
    section = _section(result.stdout.str())
    # orders calls as proxy user orders: that names it as a callee too, so its call to
    # payments nests under the test's request and is the root.
    assert [" ".join(line.split()) for line in section.splitlines()[:3]] == [
        "1 tests → orders POST /orders 502 <ms> propagated",
        "2 orders → payments POST /charges 500 <ms> ◀ root",
        "root #2 orders → payments POST /charges 500"]


def test_without_process_names_the_address_shows_with_its_port_and_is_inferred(
        suite, pytester):
    pytester.makepyfile(test_outside=OUTSIDE)
    result = suite("-k", "outside", "--tapproxy-no-process-names")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    port = re.search(r"orders at port (\d+)", out).group(1)
    section = _section(out.replace(f"127.0.0.1:{port}", "<orders>"))
    # Nothing names the address, but orders calls only inside requests to it: its call
    # nests there (inferred), and the hint gives the option that names it.
    assert [" ".join(line.split()) for line in section.splitlines()[:2]] == [
        "1 tests → <orders> POST /orders 502 <ms> propagated",
        "2 orders → payments POST /charges 500 <ms> ◀ root"]
    lines = section.splitlines()
    i = lines.index("<orders> may be orders: orders's calls happen only inside requests to it")
    assert lines[i + 1] == "  to name it: --tapproxy-service orders=<orders>"


def test_port_with_a_running_tapproxy_fails_in_one_line(suite, pytester, record):  # noqa: F811
    pytester.makepyfile(test_port_url="""
        import sys

        def test_port_url(tapproxy_service):
            tapproxy_service("payments", [sys.executable, "shop_services.py", "payments",
                                          "{port}"], port=1)
    """)
    rec = record()
    result = suite("-k", "port_url", proxy=f"--tapproxy-url={rec.control_url}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tapproxy: service payments: port= fronts it with a "
                                 "listener of the embedded proxy*"])
    assert "Traceback" not in result.stdout.str()
    rec.stop()
