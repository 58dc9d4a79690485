"""`why --baseline` over many tests reads the baseline once, not once per test (1,000
tests took 34 s, 4,000 over 300 s): counted in bytes the process read (/proc/self/io)."""

from __future__ import annotations

import json
import subprocess
import sys

from tapproxy.capture import TestCase
from tests.spans.build import MS, T0, exchange, write_capture

TESTS = 300
# Runs `tapproxy` and prints the bytes it read in all (rchar) as its last stderr line.
_COUNTING = ("import atexit, sys\n"
             "def said():\n"
             "    io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
             "    sys.stderr.write(f'\\nrchar {io[\"rchar\"]}\\n')\n"
             "atexit.register(said)\n"
             "from tapproxy.cli import main\n"
             "sys.argv[0] = 'tapproxy'\n"
             "main()\n")


def bytes_read(*args) -> tuple[int, subprocess.CompletedProcess]:
    r = subprocess.run([sys.executable, "-c", _COUNTING, *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    return int(r.stderr.split()[-1]), r


def capture(path, failing: bool):
    records = []
    for i in range(TESTS):
        t, s = f"tests/test_many.py::test_{i:04d}", 10 * i
        bad = failing and i % 10 == 9
        records += [
            exchange(f"a{i}", "pytest", "gateway", s, s + 5, test=t, status=502 if bad else 200),
            exchange(f"b{i}", "gateway", "stock", s + 1, s + 4, test=t, path=f"/items/{i}",
                     status=500 if bad else 200, response_body=b'{"n": %d}' % (i % 3)),
            TestCase(t, T0 + s * MS, T0 + (s + 6) * MS, "failed" if bad else "passed"),
        ]
    return write_capture(path, records)


def test_why_reads_the_baseline_once_whatever_the_number_of_tests(tmp_path) -> None:
    run, good = capture(tmp_path / "run.tap", True), capture(tmp_path / "good.tap", False)
    alone, _ = bytes_read("why", run, "--json")
    with_baseline, r = bytes_read("why", run, "--json", "--baseline", good)
    assert r.returncode == 0, r.stderr
    stories = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(stories) == TESTS // 10
    assert {s["divergence"]["what"] for s in stories} == {"status 502, baseline 200"}
    assert [s["divergence"]["baseline_exchange_id"] for s in stories] == \
        [f"a{i}" for i in range(9, TESTS, 10)]
    # Once through the baseline (and each needed test's records once more), not once
    # per test: reading it per test is TESTS times its size.
    assert with_baseline - alone <= 3 * good.stat().st_size


def test_every_test_is_compared_with_its_own_baseline(tmp_path) -> None:
    run, good = capture(tmp_path / "run.tap", True), capture(tmp_path / "good.tap", False)
    # The baseline written in another order (xdist): each test still finds its own.
    records = []
    for i in reversed(range(TESTS)):
        t, s = f"tests/test_many.py::test_{i:04d}", 10 * (TESTS - i)
        records += [exchange(f"a{i}", "pytest", "gateway", s, s + 5, test=t),
                    exchange(f"b{i}", "gateway", "stock", s + 1, s + 4, test=t,
                             path=f"/items/{i}", response_body=b'{"n": %d}' % (i % 3)),
                    TestCase(t, T0 + s * MS, T0 + (s + 6) * MS, "passed")]
    shuffled = write_capture(tmp_path / "shuffled.tap", records)
    for baseline in (good, shuffled):
        _, r = bytes_read("why", run, "--json", "--baseline", baseline)
        stories = [json.loads(line) for line in r.stdout.splitlines()]
        assert [s["divergence"]["baseline_exchange_id"] for s in stories] == \
            [f"a{i}" for i in range(9, TESTS, 10)], r.stderr
