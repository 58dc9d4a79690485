"""`tapproxy show --logs`: the services' log lines from a capture, each one whole."""

from __future__ import annotations

import json

from tapproxy.capture import TestCase
from tapproxy.capture.model import ServiceLog
from tests.conftest import run_cli
from tests.spans.build import MS, T0, write_capture

LONG = "ERROR card declined: issuer said no; " + "details " * 30 + "END"


def _capture(tmp_path):
    return write_capture(tmp_path / "run.tap", [
        ServiceLog("payments", "stdout", "started", T0),
        ServiceLog("payments", "stderr", LONG, T0 + 110 * MS),
        ServiceLog("orders", "stdout", "POST /orders 502", T0 + 120 * MS),
        TestCase("tests/test_shop.py::test_declined_card", T0 + 100 * MS, T0 + 200 * MS,
                 "failed"),
        ServiceLog("payments", "stdout", "after the test", T0 + 300 * MS),
    ])


def test_logs_of_one_test_and_service_are_printed_whole_within_80_columns(tmp_path):
    path = _capture(tmp_path)
    r = run_cli("show", path, "--logs", "--test", "*test_declined_card",
                "--service", "payments")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("00:00:00.110 payments ! ERROR card declined")
    head = len("00:00:00.110 payments ! ")
    assert lines[0][head:] + "".join(line[head:] for line in lines[1:]) == LONG
    everything = run_cli("show", path, "--logs").stdout
    for text in ("started", "POST /orders 502", "after the test"):
        assert text in everything
    window = run_cli("show", path, "--logs", "--test", "*declined*").stdout
    assert "orders" in window and "started" not in window and "after the test" not in window


def test_logs_as_json_and_bad_combinations(tmp_path):
    path = _capture(tmp_path)
    rows = [json.loads(line) for line in
            run_cli("show", path, "--logs", "--json", "--service", "orders").stdout.splitlines()]
    assert rows == [{"kind": "log", "service": "orders", "stream": "stdout",
                     "line": "POST /orders 502", "timestamp": T0 + 120 * MS}]
    for args, message in ((["--exchange", "1"], "--logs prints log lines"),
                          (["--test", "nosuch"], "no test 'nosuch'")):
        r = run_cli("show", path, "--logs", *args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert message in r.stderr
