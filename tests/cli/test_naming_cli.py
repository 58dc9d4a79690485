"""`--service NAME=HOST:PORT` on why, stats, spans and show: naming addresses afterwards.

A capture whose callees were recorded as addresses (services nobody named, process
names off) is read with the readers' `--service`; what they print uses the names.
"""

from __future__ import annotations

import dataclasses
import json

from tapproxy.capture import Party, TestCase
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"
GW, ORDERS, PAY = "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"


def at(id, caller, address, start, end, **kw):
    x = exchange(id, caller, "-", start, end, test=TEST, port=int(address.rsplit(":")[1]),
                 **kw)
    q = dataclasses.replace(x.request, host="127.0.0.1")
    return dataclasses.replace(x, request=q, callee=Party("127.0.0.1", "host", address))


def capture(tmp_path):
    # gateway and orders both call only inside the test's request to GW: which one GW
    # is cannot be told, so without names the root is uncertain.
    return write_capture(tmp_path / "run.tap", [
        at("a", "tests", GW, 0, 200, status=502, method="POST", path="/checkout"),
        at("b", "gateway", ORDERS, 5, 150, status=502, method="POST", path="/orders"),
        at("c", "audit", PAY, 160, 170, status=500, method="POST", path="/log"),
        TestCase(TEST, T0, T0 + 300 * MS, "failed"),
    ])


def test_why_without_names_says_the_root_is_uncertain_and_how_to_settle_it(tmp_path):
    path = capture(tmp_path)
    r = run_cli("why", path, "--json")
    assert r.returncode == 0, r.stderr
    (story,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert story["root"] is None
    # The test's own call may be the root too, if neither caller is GW.
    assert story["uncertain"]["candidates"] == [1, 2, 3]
    assert set(story["uncertain"]["settle"]) == {f"--service gateway={GW}",
                                                 f"--service audit={GW}"}
    text = run_cli("why", path).stdout
    assert "root uncertain: one of" in text and f"--service gateway={GW}" in text
    assert "made no calls" not in text


def test_why_with_the_settling_option_names_the_root(tmp_path):
    path = capture(tmp_path)
    r = run_cli("why", path, "--json", "--service", f"gateway={GW}",
                "--service", f"orders={ORDERS}")
    (story,) = [json.loads(line) for line in r.stdout.splitlines()]
    calls = {c["number"]: c for c in story["calls"]}
    root = calls[story["root"]["number"]]
    assert (root["caller"], root["callee"], root["path"]) == ("gateway", "orders", "/orders")
    assert story["uncertain"] is None
    # audit is still nobody's callee: its call is its own, a failure the test did not see.
    assert calls[3]["parent"] is None


def test_show_stats_and_spans_take_the_same_names(tmp_path):
    path = capture(tmp_path)
    named = ("--service", f"gateway={GW}", "--service", f"orders={ORDERS}")
    rows = [json.loads(line) for line in
            run_cli("show", path, "--json", *named).stdout.splitlines()]
    assert [(r["caller"]["name"], r["callee"]["name"]) for r in rows] == [
        ("tests", "gateway"), ("gateway", "orders"), ("audit", "127.0.0.1")]
    assert rows[0]["callee"]["source"] == "service-map"
    # NAME without `=` is still the filter it was.
    only = run_cli("show", path, "--json", *named, "--service", "orders").stdout
    assert len(only.splitlines()) == 1
    stats = json.loads(run_cli("stats", path, "--json", *named).stdout)
    assert {tuple(e["key"]) for e in stats["edge"]} >= {("tests", "gateway"),
                                                        ("gateway", "orders")}
    out = tmp_path / "spans.jsonl"
    r = run_cli("spans", path, "--out", out, *named)
    assert r.returncode == 0, r.stderr
    services = {a["value"]["stringValue"] for line in out.read_text().splitlines()
                for rs in json.loads(line)["resourceSpans"]
                for a in rs["resource"]["attributes"] if a["key"] == "service.name"}
    assert {"gateway", "orders"} <= services


def test_a_bad_service_option_is_one_line(tmp_path):
    r = run_cli("why", capture(tmp_path), "--service", "nonsense")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--service" in r.stderr


def test_a_test_is_found_by_the_name_after_its_file_too(tmp_path):
    path = capture(tmp_path)
    for name in ("test_checkout", "test_check*", TEST):
        r = run_cli("why", path, "--test", name, "--json")
        assert r.returncode == 0, (name, r.stderr)
        assert json.loads(r.stdout)["test"] == TEST
    rows = run_cli("show", path, "--test", "test_checkout", "--json").stdout.splitlines()
    assert len(rows) == 3
    one = run_cli("show", path, "--exchange", "test_checkout#2")
    assert one.returncode == 0 and "/orders" in one.stdout
    assert run_cli("why", path, "--test", "test_nothing").returncode == 2


def test_a_process_has_one_name_in_every_reader(tmp_path):
    # gateway was called (named by its executable) before it made its first call as
    # proxy user gateway: the same PID and command line, so one name everywhere.
    def proc(x, party):
        return dataclasses.replace(x, callee=party)

    early = proc(exchange("a", "tests", "-", 0, 10, test=TEST, path="/health"),
                 Party("python3.12", "process", GW, 7, "python gw.py"))
    later = proc(exchange("b", "tests", "-", 20, 100, test=TEST, path="/checkout"),
                 Party("gateway", "proxy-user", GW, 7, "python gw.py"))
    own = dataclasses.replace(exchange("c", "-", "orders", 30, 90, test=TEST),
                              caller=Party("gateway", "proxy-auth", None, 7, "python gw.py"))
    path = write_capture(tmp_path / "run.tap", [early, later, own,
                                                TestCase(TEST, T0, T0 + 300 * MS, "passed")])
    rows = [json.loads(line) for line in run_cli("show", path, "--json").stdout.splitlines()]
    assert [r["callee"]["name"] for r in rows] == ["gateway", "gateway", "orders"]
    stats = json.loads(run_cli("stats", path, "--json").stdout)
    assert {tuple(e["key"]) for e in stats["edge"]} == {("tests", "gateway"),
                                                         ("gateway", "orders")}
    out = tmp_path / "spans.jsonl"
    assert run_cli("spans", path, "--out", out).returncode == 0
    assert "python3.12" not in out.read_text()
