"""`tapproxy record --workers 2`: the real CLI, two real mitmproxy workers behind the
same ports, a real aiohttp service, and urllib clients opening a connection per
request so the kernel spreads them over both workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tapproxy.capture import Exchange, TestCase, open_capture
from tapproxy.errors import ProxyError
from tapproxy.proxy.embedded import ControlClient
from tests.conftest import TAPPROXY, free_port, run_cli, wait_for

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="SO_REUSEPORT spreading is Linux's"),
              pytest.mark.slow]  # each starts three processes that import mitmproxy


@dataclass
class Run:
    process: subprocess.Popen
    output: Path
    proxy: str
    control: ControlClient
    stderr: Path

    def get(self, url: str) -> int:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.proxy}))
        with opener.open(url, timeout=30) as r:  # a new connection each time
            r.read()
            return r.status

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.control.stats()["workers"]]

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        stdout, _ = self.process.communicate(timeout=60)
        return self.process.returncode, stdout


@pytest.fixture
def record_workers(tmp_path: Path, confdir: Path) -> Iterator:
    runs: list[Run] = []

    def start(workers: str = "2", *extra: str) -> Run:
        output = tmp_path / "run.tap"
        listen, control = free_port(), free_port()
        stderr = tmp_path / "stderr.txt"
        process = subprocess.Popen(
            [*TAPPROXY, "record", "-o", str(output), "--workers", workers,
             "--listen", f"127.0.0.1:{listen}", "--control", f"127.0.0.1:{control}",
             "--confdir", str(confdir), *extra],
            stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True,
            start_new_session=True)  # its own group: a test may SIGKILL all of it
        run = Run(process, output, f"http://127.0.0.1:{listen}",
                  ControlClient(f"http://127.0.0.1:{control}"), stderr)
        runs.append(run)

        def up() -> bool:
            assert process.poll() is None, stderr.read_text()
            try:
                return len(run.control.stats()["workers"]) == int(workers)
            except ProxyError:
                return False

        wait_for(up, timeout=60, what="tapproxy record --workers")
        return run

    yield start
    for run in runs:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


def _exchanges(path: Path) -> list[Exchange]:
    with open_capture(path) as reader:
        return [r for r in reader if isinstance(r, Exchange)]


def test_both_workers_record_and_the_capture_keeps_the_order_sent(record_workers, echo):
    run = record_workers()
    for i in range(40):  # one after another, each on a connection of its own
        assert run.get(f"{echo.url}/seq/{i}") == 200
    per_worker = [w["exchanges"] for w in run.control.stats()["workers"]]
    code, stdout = run.stop()
    assert code == 0, run.stderr.read_text()
    assert sum(per_worker) == 40 and all(n > 0 for n in per_worker), per_worker
    paths = [x.request.path for x in _exchanges(run.output)]
    assert paths == [f"/seq/{i}" for i in range(40)]
    assert "40 records from 2 workers merged" in stdout
    assert not list(run.output.parent.glob("run.worker*.tap"))  # parts merged away


def test_no_record_lost_under_concurrent_load(record_workers, echo):
    run = record_workers()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: run.get(f"{echo.url}/load/{i}"), range(300)))
    assert statuses == [200] * 300
    assert run.control.stats()["exchanges"] == 300
    code, _ = run.stop()
    assert code == 0, run.stderr.read_text()
    paths = sorted(x.request.path for x in _exchanges(run.output))
    assert paths == sorted(f"/load/{i}" for i in range(300))


def test_control_api_opens_and_closes_tests_in_every_worker(record_workers, echo):
    run = record_workers()
    run.control.start_test("t::one")
    with pytest.raises(ProxyError, match="409"):
        run.control.start_test("t::one")
    for i in range(20):
        run.get(f"{echo.url}/in-test/{i}")
    assert run.control.end_test("t::one", "passed") == 20
    run.get(f"{echo.url}/after")
    assert run.control._call("POST", "/flush")["records"] >= 21
    assert run.control._call("GET", "/metrics")["overall"]["count"] == 21
    code, _ = run.stop()
    assert code == 0, run.stderr.read_text()
    with open_capture(run.output) as reader:
        records = list(reader)
    cases = [r for r in records if isinstance(r, TestCase)]
    assert [(c.name, c.outcome) for c in cases] == [("t::one", "passed")]
    tests = {x.request.path: x.test for x in records if isinstance(x, Exchange)}
    assert all(tests[f"/in-test/{i}"] == "t::one" for i in range(20))
    assert tests["/after"] is None


def test_a_killed_worker_is_reported_and_the_other_keeps_serving(record_workers, echo):
    run = record_workers()
    for i in range(10):
        run.get(f"{echo.url}/before/{i}")
    run.control.flush()
    victim = run.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: run.control.stats()["workers_lost"], what="the loss reported")
    statuses = [run.get(f"{echo.url}/after/{i}") for i in range(30)]
    assert statuses == [200] * 30
    code, _ = run.stop()
    assert code == 1  # records may have been lost: the run says so
    err = run.stderr.read_text()
    assert f"worker 1 (pid {victim}) killed by SIGKILL" in err
    paths = {x.request.path for x in _exchanges(run.output)}
    assert {f"/after/{i}" for i in range(30)} <= paths
    assert {f"/before/{i}" for i in range(10)} <= paths  # flushed before the kill


def test_sigkill_of_the_whole_group_leaves_parts_that_merge_recovers(
        record_workers, echo, tmp_path):
    run = record_workers()
    for i in range(30):
        run.get(f"{echo.url}/kept/{i}")
    run.control.flush()
    os.killpg(run.process.pid, signal.SIGKILL)
    run.process.wait()
    parts = sorted(tmp_path.glob("run.worker*.tap"))
    assert len(parts) == 2 and not run.output.exists()
    result = run_cli("merge", *parts, "-o", tmp_path / "recovered.tap")
    assert result.returncode == 0, result.stderr
    assert "30 records from 2 parts merged" in result.stdout
    paths = [x.request.path for x in _exchanges(tmp_path / "recovered.tap")]
    assert paths == [f"/kept/{i}" for i in range(30)]


def test_a_fronted_service_is_recorded_under_its_name_by_every_worker(
        record_workers, echo):
    public = free_port()
    service = Path(__file__).parents[1] / "fronted_service.py"
    run = record_workers("2", "--start", f"svc@{public}={sys.executable} {service} {{port}}")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for i in range(12):  # to its public port, each on a connection of its own
        url = f"http://127.0.0.1:{public}/call?url={echo.url}/from-svc/{i}"
        with direct.open(url, timeout=30) as r:
            assert r.status == 200
    code, _ = run.stop()
    assert code == 0, run.stderr.read_text()
    exchanges = _exchanges(run.output)
    assert sorted(x.request.path for x in exchanges if x.caller.name == "svc") == sorted(
        f"/from-svc/{i}" for i in range(12))
    assert len([x for x in exchanges if x.callee.name == "svc"]) == 12


def test_the_control_api_through_the_proxy_is_refused_by_every_worker(record_workers):
    import urllib.error

    run = record_workers()
    for _ in range(8):  # each on a connection of its own: both workers answer some
        with pytest.raises(urllib.error.HTTPError) as refused:
            run.get(f"{run.control.url}/tests")
        assert refused.value.code == 403
    assert run.control._call("GET", "/tests") == {"open": []}


def test_merge_names_a_missing_part(tmp_path):
    result = run_cli("merge", tmp_path / "nope.tap", "-o", tmp_path / "out.tap")
    assert result.returncode == 2
    assert "nope.tap" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_workers_value_is_one_line(tmp_path):
    result = run_cli("record", "-o", tmp_path / "x.tap", "--workers", "many")
    assert result.returncode == 2
    assert "--workers" in result.stderr and "Traceback" not in result.stderr


def test_pytest_with_two_workers_explains_a_failing_test_as_with_one(pytester, confdir):
    from tests.test_pytest_plugin import SUITE, _section

    for f in SUITE.iterdir():
        if f.suffix == ".py":
            (pytester.path / f.name).write_bytes(f.read_bytes())

    def run(*args: str):
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--tapproxy", f"--tapproxy-confdir={confdir}",
            f"--tapproxy-capture={pytester.path / 'run.tap'}", "-k",
            "checkout or declined or health", *args, timeout=180)

    one = run()
    two = run("--tapproxy-workers=2")
    two.assert_outcomes(**one.parseoutcomes())
    assert _section(two.stdout.str()) == _section(one.stdout.str())
    with open_capture(pytester.path / "run.tap") as reader:
        records = list(reader)
    assert {r.name for r in records if isinstance(r, TestCase)} >= {
        "test_shop.py::test_checkout", "test_shop.py::test_declined_card"}


def test_a_reverse_listener_to_an_https_upstream_starts_in_every_worker(record_workers):
    # mitmproxy listens on UDP too there (HTTP/3), a port the workers cannot share:
    # the second worker failed with "address already in use" before it listened.
    port = free_port()
    run = record_workers("2", "--reverse",
                         f"secure=https://127.0.0.1:{free_port()}@127.0.0.1:{port}")
    for i in range(6):  # nothing listens upstream: each a 502, recorded by either worker
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/r/{i}", timeout=30)
        assert e.value.code == 502
    code, _ = run.stop()
    assert code == 0, run.stderr.read_text()
    xs = _exchanges(run.output)
    assert sorted(x.request.path for x in xs) == [f"/r/{i}" for i in range(6)]
    assert {x.callee.name for x in xs} == {"secure"}
