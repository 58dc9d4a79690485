"""The pytest plugin, run the way users run it: a real suite of three aiohttp services
started as processes through tapproxy_service, run by pytest in a subprocess (pytester)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tapproxy.capture import Exchange, ResourceSample, ServiceLog, TestCase, open_capture
from tests.cli.test_record_cli import record  # noqa: F401 - the fixture
from tests.conftest import TAPPROXY, free_port, run_cli

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
report: {capture.with_suffix(".html")}
the log lines whole (lines above are cut to 80 columns):
  tapproxy show {capture} --logs --test test_shop.py::test_declined_card --service payments"""
    raw = re.search(r"^-+ tapproxy -+\n(.*?)\n(?==+ |- generated)", result.stdout.str(),
                    re.S | re.M).group(1)
    assert all(len(line) <= 80 for line in raw.splitlines()
               if str(capture.with_suffix("")) not in line)  # paths: the capture, its report
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
    assert all(len(line) <= 80 for line in summary.splitlines()
               if str(capture.with_suffix("")) not in line)

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
        from tapproxy.supervisor.fronting import free_loopback_port

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
    from tapproxy.supervisor.fronting import free_loopback_port

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
    assert lines[i + 1] == "  if so, name it: --tapproxy-service orders=<orders>"


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


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def _copy_suite(pytester: pytest.Pytester) -> None:
    for f in SUITE.iterdir():
        if f.suffix == ".py":
            shutil.copy(f, pytester.path / f.name)


PLAIN = """
    import json, sys, urllib.error, urllib.request
    import pytest

    PORT = {port}

    @pytest.fixture(scope="session")
    def payments(tapproxy_service):
        return tapproxy_service(
            "payments", [sys.executable, "shop_services.py", "payments", "{{port}}"],
            port=PORT)

    def send(url, data=None):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
        req = urllib.request.Request(url, data=data and json.dumps(data).encode(),
                                     headers={{"content-type": "application/json"}})
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None

    def test_good_card(payments):
        assert payments.url == f"http://127.0.0.1:{{PORT}}"
        assert send(f"{{payments.url}}/env") == (200, {{"HTTP_PROXY": None,
                                                       "http_proxy": None}})
        assert send(f"{{payments.url}}/charges", {{"card": "ok", "amount": 5}})[0] == 201

    def test_bad_card(payments):
        assert send(f"{{payments.url}}/charges", {{"card": "bad", "amount": 5}})[0] == 201
"""


def test_without_the_flag_services_run_plainly_and_a_failure_fails(pytester, monkeypatch):
    """A CI job that forgets --tapproxy still runs the suite, and goes red where it fails."""
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    _copy_suite(pytester)
    port = free_port()
    pytester.makepyfile(test_plain=PLAIN.format(port=port))
    # -s: the service's lines come from a thread of the session, which pytest's own
    # capture would give to whichever test (or nothing) runs when they arrive.
    result = _run(pytester, "-s", "test_plain.py")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    assert "card declined" in result.stderr.str()  # its stderr, passed through
    assert not (pytester.path / ".tapproxy").exists()


def test_the_tapproxy_fixture_without_the_flag_is_an_error_naming_it(pytester):
    pytester.makepyfile(test_needs="""
        def test_needs_the_proxy(tapproxy):
            pass
    """)
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["the tapproxy fixture needs a proxy: run pytest with "
                                 "--tapproxy (or --tapproxy-url URL)"])
    assert "skipped" not in result.stdout.str()


DIES = """
    import sys

    SCRIPT = '''
    import os, sys
    for i in range(15):
        print(f"line {i} " + "x" * 100, file=sys.stderr)
    os.environ["PAYMENTS_URL"]
    '''

    def test_dies(tapproxy_service):
        tapproxy_service("orders", [sys.executable, "-c", SCRIPT, "{port}"])
"""


def test_a_service_that_dies_at_start_shows_its_last_stderr_lines(pytester, confdir):
    pytester.makepyfile(test_dies=DIES)
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}")
    result.assert_outcomes(failed=1)
    lines = result.outlines
    head = next(i for i, line in enumerate(lines)
                if "tapproxy: service orders exited with code 1" in line)
    assert lines[head].endswith("; its last stderr lines:")
    shown = lines[head + 1:head + 11]
    assert shown[-1] == "  KeyError: 'PAYMENTS_URL'"
    assert "  Traceback (most recent call last):" in shown
    numbered = [line for line in shown if line.startswith("  line ")]
    assert numbered == [f"  line {i} " + "x" * (77 - len(f"line {i} ")) + "…"
                        for i in range(15 - len(numbered), 15)]
    assert all(len(line) <= 80 for line in shown)
    assert not lines[head + 11].startswith("  ")  # ten lines, no more


def test_a_running_tapproxys_capture_is_named_in_the_footer(suite, pytester,
                                                           record):  # noqa: F811
    rec = record()
    result = suite("-k", "declined", proxy=f"--tapproxy-url={rec.control_url}")
    result.assert_outcomes(failed=1)
    own = pytester.path / "run.tap"
    # In the failing test's section, then in the end-of-run summary.
    result.stdout.fnmatch_lines([f"capture: {rec.output.resolve()}",
                                 f"services' output: {own}",
                                 "the log lines whole *", "  tapproxy show *",
                                 f"*{own} *", "*--logs --service payments",
                                 "*- tapproxy -*", "test_shop.py::test_declined_card",
                                 f"capture: {rec.output.resolve()}",
                                 "every failing test explained again:",
                                 f"*{rec.output.resolve()}",
                                 f"services' output: {own}"])
    rec.stop()


URL_CHECKS = """
    import requests

    def test_checks_its_calls(shop, tapproxy):
        r = requests.post(f"{shop.url}/checkout", json={"card": "bad"}, timeout=10,
                          proxies={"http": tapproxy.env["HTTP_PROXY"]})
        assert r.status_code == 502
        tapproxy.assert_no_failures()
"""


def test_a_running_proxy_whose_capture_is_gone_fails_the_check_saying_why(
        suite, pytester, record):  # noqa: F811
    """Never a silent pass: the capture cannot be read (here not even by the proxy)."""
    pytester.makepyfile(test_url_checks=URL_CHECKS)
    rec = record()
    rec.output.rename(rec.output.with_name("elsewhere.tap"))
    result = suite("-k", "checks_its_calls", proxy=f"--tapproxy-url={rec.control_url}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E * AssertionError: tapproxy: cannot get this test's exchanges: control API "
        f"{rec.control_url}/tests/exchanges: 500 the proxy cannot read its own "
        f"capture: {rec.output.resolve()}: no such file"])
    rec.stop()


def _private_capture_recorder(tmp_path: Path, confdir: Path):
    """`tapproxy record` writing into a directory only it sees: a tmpfs mounted in a
    mount namespace of its own, as a compose sidecar's capture is to the tests."""
    hidden = tmp_path / "sidecar"
    hidden.mkdir()
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t",
                            "tmpfs", "none", str(hidden)], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs `unshare -m` and mount (root) to hide the capture")
    listen, control = free_port(), free_port()
    args = [*TAPPROXY, "record", "-o", str(hidden / "rec.tap"), "--listen",
            f"127.0.0.1:{listen}", "--control", f"127.0.0.1:{control}", "--confdir",
            str(confdir)]
    script = 'mount -t tmpfs none "$0" && exec "$@"'
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                             str(hidden), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("export HTTPS_PROXY="):
            return proc, hidden / "rec.tap", f"http://127.0.0.1:{control}"
    raise AssertionError(f"tapproxy record exited with {proc.wait()}")


def test_a_running_proxy_whose_capture_is_out_of_reach_answers_through_its_api(
        suite, pytester, tmp_path, confdir):
    proc, capture, control = _private_capture_recorder(tmp_path, confdir)
    try:
        assert not capture.exists()  # from here: the sidecar's file is not ours to read
        result = suite("-k", "checkout or declined", proxy=f"--tapproxy-url={control}")
        # test_checkout asserts on its calls: it passes only if it saw them.
        result.assert_outcomes(passed=2, failed=1)
        section = _section(result.stdout.str())
        assert section.splitlines()[2] == (
            "  3     orders → payments  POST /charges                500 <ms>  ◀ root")
        assert f"capture: {capture}" in section.splitlines()
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


XDIST_PORTS = """
    import json, os, sys, urllib.request
    import pytest

    @pytest.fixture(scope="session")
    def payments(tapproxy_service):
        return tapproxy_service(
            "payments", [sys.executable, "shop_services.py", "payments", "{port}"],
            port=tapproxy_service.worker_port(int(os.environ["BASE_PORT"])))

    @pytest.mark.parametrize("n", range(4))
    def test_charge(payments, n):  # no proxy setting: the fronting listener records it
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"{payments.url}/charges", method="POST",
                                     data=json.dumps({"card": "ok", "amount": n}).encode(),
                                     headers={"content-type": "application/json"})
        assert opener.open(req, timeout=30).status == 201
"""


def _free_port_pair() -> int:
    while True:
        base = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base


def test_port_under_xdist_gives_each_worker_a_port_of_its_own(suite, pytester, monkeypatch):
    base = _free_port_pair()
    monkeypatch.setenv("BASE_PORT", str(base))
    pytester.makepyfile(test_xdist_ports=XDIST_PORTS)
    result = suite("-n", "2", "-k", "test_charge")
    result.assert_outcomes(passed=4)  # no warnings: nothing bypassed
    assert "in use" not in result.stdout.str()
    charges = [x for x in _records(pytester.path / "run.tap") if isinstance(x, Exchange)]
    assert sorted(x.callee.name for x in charges) == ["payments"] * 4


ONE_REQUEST = """
    import os, requests

    def test_one(shop, tapproxy):
        r = requests.post(f"{shop.url}/checkout", json={"card": "good"}, timeout=10,
                          headers={"x-run": os.environ.get("RUN", "")},
                          proxies={"http": tapproxy.env["HTTP_PROXY"]})
        assert r.status_code == 201
"""


def test_collect_only_starts_no_proxy_and_writes_no_capture(pytester, confdir):
    _copy_suite(pytester)
    result = _run(pytester, "--collect-only", "--tapproxy", f"--tapproxy-confdir={confdir}")
    assert result.ret == 0
    assert "5 tests collected" in result.stdout.str()
    assert not (pytester.path / ".tapproxy").exists()


def _old_capture(directory: Path, name: str, age_s: int) -> Path:
    path = directory / name
    path.write_bytes(b"an earlier run")
    then = time.time_ns() - age_s * 10**9
    os.utime(path, ns=(then, then))
    return path


def test_the_last_captures_are_kept_and_older_ones_removed(pytester, confdir):
    _copy_suite(pytester)
    pytester.makepyfile(test_one=ONE_REQUEST)
    runs = pytester.path / ".tapproxy"
    runs.mkdir()
    old = [_old_capture(runs, f"20260101-00000{i}.tap", 100 - i) for i in range(4)]
    mine = runs / "notes.tap"  # not a run capture: never touched
    mine.write_bytes(b"mine")
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}", "-k", "test_one",
                  "--tapproxy-keep=3")
    result.assert_outcomes(passed=1)
    new = sorted(set(runs.glob("*.tap")) - {*old, mine})
    assert len(new) == 1
    assert sorted(runs.glob("*.tap")) == sorted([*old[-2:], mine, *new])
    assert list(runs.glob("*.html")) == [new[0].with_suffix(".html")]  # its report
    pytester.makeini("[pytest]\ntapproxy_keep = 1\n")
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}", "-k", "test_one")
    result.assert_outcomes(passed=1)
    [last] = set(runs.glob("*.tap")) - {mine}
    assert last not in new
    assert list(runs.glob("*.html")) == [last.with_suffix(".html")]  # pruned with its run
    assert any(isinstance(r, TestCase) for r in _records(last))


def test_two_runs_at_once_get_captures_of_their_own(pytester, confdir):
    """Names are taken exclusively: the clock, even set back, cannot make runs share one."""
    _copy_suite(pytester)
    pytester.makepyfile(test_one=ONE_REQUEST)
    runs = pytester.path / ".tapproxy"
    runs.mkdir()
    now = time.time()
    # Earlier runs holding the names of the seconds around now (as after a clock change).
    held = [runs / (time.strftime("%Y%m%d-%H%M%S", time.gmtime(now + s)) + ".tap")
            for s in range(-2, 60)]
    for p in held:
        p.write_bytes(b"an earlier run")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "test_one",
         "--tapproxy", f"--tapproxy-confdir={confdir}", "--tapproxy-keep=0"],
        cwd=pytester.path, env={**os.environ, "RUN": run}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for run in ("a", "b")]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    assert all(p.read_bytes() == b"an earlier run" for p in held)
    new = sorted(set(runs.glob("*.tap")) - set(held))  # each beside its report
    assert len(new) == 2
    runs_seen = []
    for path in new:
        xs = [r for r in _records(path) if isinstance(r, Exchange)]
        assert len(xs) == 3
        runs_seen.append({x.request.headers.get("x-run") for x in xs
                          if x.caller.name == "tests"})
    assert sorted(runs_seen, key=sorted) == [{"a"}, {"b"}]


CA_OPENS = """
    import sys
    import pytest

    opened, per_test = [], []

    def pytest_configure(config):
        sys.addaudithook(lambda event, args: event == "open" and
                         str(args[0]).endswith("mitmproxy-ca.pem") and opened.append(1))

    @pytest.fixture(autouse=True)
    def count_ca_loads():
        before = len(opened)
        yield
        per_test.append(len(opened) - before)

    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line(f"ca loads per test: {per_test}")
"""


def test_the_ca_is_loaded_once_a_session_not_once_a_test(pytester, confdir):
    _copy_suite(pytester)
    (pytester.path / "conftest.py").write_text(
        (SUITE / "conftest.py").read_text() + textwrap.dedent(CA_OPENS))
    pytester.makepyfile(test_many="""
        import pytest, requests

        @pytest.mark.parametrize("n", range(5))
        def test_one(shop, tapproxy, n):
            r = requests.post(f"{shop.url}/checkout", json={"card": "good"}, timeout=10,
                              proxies={"http": tapproxy.env["HTTP_PROXY"]})
            assert r.status_code == 201
            assert tapproxy.env_for("other")["HTTP_PROXY"].startswith("http://other:")
    """)
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}", "test_many.py")
    result.assert_outcomes(passed=5)
    # The first test starts the services (the CA for each caller once); none after it.
    result.stdout.re_match_lines([r"ca loads per test: \[\d+, 0, 0, 0, 0\]$"])


LOADED = """
    import sys

    def pytest_terminal_summary(terminalreporter):
        loaded = sorted(m for m in sys.modules if m.startswith(("tapproxy", "mitmproxy")))
        terminalreporter.write_line(f"loaded: {' '.join(loaded)}")
"""


def test_a_run_without_tapproxy_loads_only_the_plugins_options(pytester):
    """Every pytest run of a project with tapproxy installed imports its plugin: without
    --tapproxy it costs that run the options alone, no capture, report or proxy code."""
    pytester.makeconftest(LOADED)
    pytester.makepyfile(test_plain="""
        def test_plain():
            pass
    """)
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r"loaded: tapproxy tapproxy\.errors "
                                  r"tapproxy\.pytest_plugin tapproxy\.pytest_settings$"])


CONTROL_REQUESTS = """
    import sys

    sent = []

    def pytest_configure(config):
        # The request line of every HTTP request this process sends (http.client's).
        sys.addaudithook(lambda event, args: event == "http.client.send" and
                         sent.append(bytes(args[1]).partition(b" HTTP/")[0].decode()))

    def pytest_terminal_summary(terminalreporter):
        calls = [line for line in sent if line.startswith("POST /")]
        terminalreporter.write_line(f"control requests: {calls}")
"""


def test_the_embedded_proxy_opens_and_closes_tests_without_an_http_request(
        pytester, confdir):
    """Each test is opened before it runs and closed after, with its outcome and how many
    requests it sent, and its exchanges flushed when asked for, as through the control
    API; but in the proxy's own process, with no HTTP request each time (two per test
    cost a millisecond or more)."""
    pytester.makeconftest(CONTROL_REQUESTS)
    pytester.makepyfile(test_few=f"""
        import pytest, requests

        @pytest.mark.parametrize("n", range(3))
        def test_sends(tapproxy, n):
            # Nothing listens there: the proxy answers 502, and records the exchange.
            r = requests.get("http://127.0.0.1:{free_port()}/item", timeout=10,
                             proxies={{"http": tapproxy.env["HTTP_PROXY"]}})
            assert r.status_code == 502
            [x] = tapproxy.exchanges()  # flushed first
            assert x.request.path == "/item"
            assert n != 1

        def test_quiet(tapproxy):
            pass
    """)
    capture = pytester.path / "run.tap"
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}",
                  f"--tapproxy-capture={capture}", "-W", "always::pytest.PytestWarning")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_quiet*", "*nothing went through the proxy*"])
    result.stdout.re_match_lines([r"control requests: \[\]$"])
    records = _records(capture)
    cases = {r.name.rpartition("::")[2]: r.outcome for r in records
             if isinstance(r, TestCase)}
    assert cases == {"test_sends[0]": "passed", "test_sends[1]": "failed",
                     "test_sends[2]": "passed", "test_quiet": "passed"}
    tests = [x.test.rpartition("::")[2] for x in records if isinstance(x, Exchange)]
    assert tests == ["test_sends[0]", "test_sends[1]", "test_sends[2]"]


@pytest.mark.parametrize(("args", "message"), [
    (["--tapproxy-url", "garbage"],
     "bad --tapproxy-url 'garbage': expected http://HOST:PORT (a control API)"),
    (["--tapproxy", "--tapproxy-capture", "afile/x.tap"],
     "--tapproxy-capture afile/x.tap: {path}/afile is not a directory"),
    (["--tapproxy", "--tapproxy-capture", "adir"],
     "--tapproxy-capture adir: is a directory, not a file"),
    (["--tapproxy", "--tapproxy-keep", "-1"],
     "bad --tapproxy-keep -1: expected a count (0: all)"),
    (["--tapproxy", "--tapproxy-service", "nameless"],
     "bad --tapproxy-service 'nameless': expected NAME=HOST[:PORT], e.g. "
     "inventory=127.0.0.1:5002"),
    (["--tapproxy", "--tapproxy-service", "x=[::1"],
     "bad --tapproxy-service address '[::1': expected [IPv6]:PORT"),
    (["--tapproxy", "-o", "tapproxy_services=ok=127.0.0.1:1\nbad"],
     "bad ini tapproxy_services 'bad': expected NAME=HOST[:PORT], e.g. "
     "inventory=127.0.0.1:5002"),
    (["--tapproxy", "-o", "tapproxy_keep=many"],
     "bad ini tapproxy_keep 'many': expected a count (0: all)"),
])
def test_bad_plugin_options_are_one_line_and_a_usage_error(pytester, confdir, args, message):
    pytester.makepyfile(test_ran="def test_ran():\n    print('RAN')\n")
    (pytester.path / "afile").write_text("")
    (pytester.path / "adir").mkdir()
    result = _run(pytester, "-s", f"--tapproxy-confdir={confdir}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines == [f"ERROR: tapproxy: {message.format(path=pytester.path)}", ""]
    assert "RAN" not in result.stdout.str()
    assert not list(pytester.path.glob(".tapproxy/*"))


NAMED_OUTSIDE = """
    import asyncio, threading, requests
    import pytest
    from aiohttp import web

    @pytest.fixture(scope="session")
    def inventory():  # started by the suite itself, not through tapproxy_service
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        async def start():
            app = web.Application()
            app.router.add_get("/stock", lambda r: web.json_response({{"n": 1}}))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", {port})
            await site.start()
        asyncio.run_coroutine_threadsafe(start(), loop).result()
        return "http://127.0.0.1:{port}"

    def test_stock(inventory, tapproxy):
        requests.get(f"{{inventory}}/stock", proxies={{"http": tapproxy.env["HTTP_PROXY"]}},
                     timeout=10)
        [x] = tapproxy.exchanges()
        print("CALLEE", x.callee.name, x.callee.source)
"""


@pytest.mark.parametrize("naming", ["option", "ini host only"])
def test_services_started_outside_the_fixtures_are_named_up_front(pytester, confdir, naming):
    port = free_port()
    pytester.makepyfile(test_named=NAMED_OUTSIDE.format(port=port))
    if naming == "option":
        args = ["--tapproxy-service", f"inventory=127.0.0.1:{port}",
                "--tapproxy-service", "other=127.0.0.1:1"]
    else:
        pytester.makeini("[pytest]\ntapproxy_services =\n    inventory=127.0.0.1\n")
        args = []
    result = _run(pytester, "-s", "--tapproxy", f"--tapproxy-confdir={confdir}", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*CALLEE inventory service-map*"])


def test_services_named_up_front_with_a_running_tapproxy(pytester, record):  # noqa: F811
    port = free_port()
    pytester.makepyfile(test_named=NAMED_OUTSIDE.format(port=port))
    rec = record()
    result = _run(pytester, "-s", f"--tapproxy-url={rec.control_url}",
                  "--tapproxy-service", f"inventory=127.0.0.1:{port}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*CALLEE inventory service-map*"])
    # The running proxy recorded it all: no empty capture of the plugin's own is left.
    assert not list(pytester.path.glob(".tapproxy/*"))
    rec.stop()


def test_one_port_for_every_xdist_worker_fails_saying_what_to_give(suite, pytester,
                                                                   monkeypatch):
    monkeypatch.setenv("BASE_PORT", str(free_port()))
    pytester.makepyfile(test_xdist_ports=XDIST_PORTS.replace(
        "port=tapproxy_service.worker_port(int(os.environ[\"BASE_PORT\"]))",
        "port=int(os.environ[\"BASE_PORT\"])"))
    result = suite("-n", "2", "-k", "test_charge")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) >= 1, outcomes  # the worker that came second
    result.stdout.fnmatch_lines(["*address already in use (each pytest-xdist worker starts "
                                 "its own services: give "
                                 "port=tapproxy_service.worker_port(P))*"])


def test_a_run_without_pytest_xdist_records(pytester, confdir):
    # The xdist hooks are optional: without the plugin (here blocked, as if not
    # installed) pluggy would reject them as unknown hooks, before any test ran.
    pytester.makepyfile(test_plain="def test_plain(tapproxy):\n    assert tapproxy.url\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "--tapproxy",
        f"--tapproxy-confdir={confdir}", f"--tapproxy-capture={pytester.path / 'run.tap'}",
        timeout=120)
    result.assert_outcomes(passed=1)
    assert [r.name for r in _records(pytester.path / "run.tap")
            if isinstance(r, TestCase)] == ["test_plain.py::test_plain"]


def test_the_otlp_options_are_the_embedded_proxys(pytester, confdir):
    # A running tapproxy has its own (record --otlp-receive): asking the plugin for them
    # there would silently receive nothing.
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--tapproxy-url", "http://127.0.0.1:9",
        "--tapproxy-otlp-receive", f"--tapproxy-confdir={confdir}", timeout=120)
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    assert "tapproxy: --tapproxy-otlp-receive needs --tapproxy (not --tapproxy-url)" \
        in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


PROXY_CAPTURE_OPENS = """
    import pytest

    opened, per_test = [], []

    def pytest_configure(config):
        sys.addaudithook(lambda event, args: event == "open" and
                         str(args[0]).endswith(".proxy.tap") and opened.append(1))

    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line(f"proxy capture opened: {len(opened)}")
"""


def test_a_test_s_exchanges_are_read_on_not_read_again_from_the_start(pytester, confdir):
    """`tapproxy.exchanges()`, `assert_called()` and each failure story read the proxy's
    capture on from where the last read stopped: a long suite does not read it again
    and again (quadratic). Each test still sees its own calls and only them."""
    _copy_suite(pytester)
    (pytester.path / "conftest.py").write_text(
        "import sys\n" + (SUITE / "conftest.py").read_text()
        + textwrap.dedent(PROXY_CAPTURE_OPENS))
    pytester.makepyfile(test_many="""
        import pytest, requests

        @pytest.mark.parametrize("n", range(6))
        def test_one(shop, tapproxy, n):
            r = requests.post(f"{shop.url}/checkout", json={"card": "good", "n": n},
                              timeout=10, proxies={"http": tapproxy.env["HTTP_PROXY"]})
            assert r.status_code == 201
            assert [x.callee.name for x in tapproxy.exchanges()] == [
                "gateway", "orders", "payments"]
            tapproxy.assert_called(caller="orders", callee="payments", status=201)
            assert len(tapproxy.calls(caller="tests")) == 1

        def test_declined(shop, tapproxy):
            r = requests.post(f"{shop.url}/checkout", json={"card": "bad"}, timeout=10,
                              proxies={"http": tapproxy.env["HTTP_PROXY"]})
            assert r.status_code == 201
    """)
    result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}", "test_many.py")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*orders → payments  POST /charges*500*◀ root"])
    # One reading over the session, and the merge at its end.
    result.stdout.re_match_lines([r"proxy capture opened: 2$"])


CA_KEY_OPENS = """
    import pytest

    opened = []

    def pytest_configure(config):
        sys.addaudithook(lambda event, args: event == "open" and
                         str(args[0]).endswith("mitmproxy-ca.pem") and opened.append(1))

    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line(f"ca key opened: {len(opened)}")
"""


def test_the_ca_key_is_loaded_once_by_tapproxy_however_many_callers(pytester, confdir):
    """Loading the CA checks its RSA key (tens of ms): tapproxy checks it once a session,
    not again for each caller's environment (the services' and the tests' own)."""
    _copy_suite(pytester)
    (pytester.path / "conftest.py").write_text(
        "import sys\n" + (SUITE / "conftest.py").read_text()
        + textwrap.dedent(CA_KEY_OPENS))
    pytester.makepyfile(test_callers="""
        import requests

        def test_callers(shop, tapproxy):
            r = requests.post(f"{shop.url}/checkout", json={"card": "good"}, timeout=10)
            assert r.status_code == 201

        def test_more_callers(shop, tapproxy):
            test_callers(shop, tapproxy)
            for caller in ("one", "two", "three"):
                assert tapproxy.env_for(caller)["HTTP_PROXY"].startswith(
                    f"http://{caller}:")
    """)
    from tapproxy.proxy.certs import ca_cert_path

    ca_cert_path(confdir)  # made before: making it opens its files more
    opened = []
    for test in ("test_callers", "test_more_callers"):
        result = _run(pytester, "--tapproxy", f"--tapproxy-confdir={confdir}",
                      f"test_callers.py::{test}")
        result.assert_outcomes(passed=1)
        [line] = [x for x in result.outlines if x.startswith("ca key opened: ")]
        opened.append(int(line.rpartition(" ")[2]))
    assert opened[0] == opened[1]


def test_with_a_running_tapproxy_the_tests_direct_calls_are_named_tests(
        pytester, record, services):  # noqa: F811
    from tests.proxy.test_clients import echo_app

    echo = services.start("echo", echo_app())
    # A test calling a fronted service on its port, not through HTTP_PROXY: the proxy
    # names the caller by its process, which the plugin names `tests` on this host.
    port = free_port()
    rec = record("--reverse", f"echo={echo.url}@127.0.0.1:{port}")
    pytester.makepyfile(test_direct=f"""
        import urllib.request

        def test_direct():
            with urllib.request.urlopen("http://127.0.0.1:{port}/direct", timeout=10) as r:
                assert r.status == 200
    """)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--tapproxy-url={rec.control_url}", timeout=120)
    result.assert_outcomes(passed=1)
    code, _, _ = rec.stop()
    assert code == 0
    [x] = [r for r in _records(rec.output) if isinstance(r, Exchange)]
    assert (x.caller.name, x.callee.name, x.test) == (
        "tests", "echo", "test_direct.py::test_direct")
