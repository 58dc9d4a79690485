"""`tapproxy demo` end to end, as a new user runs it: the real command in an empty
directory, its inner `pytest --tapproxy` session, and what it prints and writes."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tapproxy.capture import Exchange, TestCase, open_capture
from tests.conftest import require_tool, run_cli
from tests.report.test_html_report import blocks

SERVICES = {"shop", "catalog", "inventory", "payments"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(the finished command, its directory): run once for the module."""
    require_tool("node", "nodejs")
    where = tmp_path_factory.mktemp("demo")
    confdir = tmp_path_factory.mktemp("mitmconf")
    out = run_cli("demo", "--confdir", confdir, cwd=where, timeout=120)
    return out, where


@pytest.mark.slow
def test_the_demo_prints_pytests_failure_section_and_the_figures(demo):
    out, _ = demo
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    text = out.stdout
    assert "= FAILURES =" in text
    # The cascade: payments' 500 is the root, the shop's 502 propagated from it.
    assert re.search(r"^root #(\d+) shop → payments  POST /charges  500$", text, re.M), text
    assert re.search(r"^  #1 tests → shop 502: propagated from #\d+$", text, re.M)
    assert "ERROR card processor unavailable" in text  # payments' own log line
    # The contract drift: the catalog's price became a string; the shop turned it to 500.
    assert re.search(r"^root #\d+ shop → catalog  GET /products/mug  200$", text, re.M)
    assert 'contract mismatch: /price: expected number, got string "7.00"' in text
    assert re.search(r"contract: \S*catalog\.yaml:\d+:\d+ \(product\)", text)
    assert re.search(r"=+ 2 failed, 3 passed in [\d.]+s =+$", text, re.M)
    # The figures per edge, with every call counted.
    edges = dict(re.findall(r"^(\w+ → \w+) +(\d+) ", text, re.M))
    assert edges == {"tests → shop": "5", "shop → catalog": "5", "shop → inventory": "3",
                     "shop → payments": "2"}
    # What to open next, in two lines, and nothing wider than 80 columns.
    nexts = text.splitlines()[-2:]
    assert nexts[0].startswith("open next: report.html"), nexts
    assert "tapproxy show demo.tap" in nexts[1]
    # A line naming a path is the one thing that cannot be cut or wrapped (here long
    # temporary directories; a user's is where they ran the demo).
    wide = [line for line in text.splitlines() if len(line) > 80 and "/" not in line]
    assert not wide, wide


@pytest.mark.slow
def test_the_capture_holds_the_four_services_and_the_tests(demo):
    out, where = demo
    assert out.returncode == 0, out.stderr
    with open_capture(where / "demo.tap") as reader:
        records = list(reader)
        assert not reader.truncated
    exchanges = [r for r in records if isinstance(r, Exchange)]
    assert {x.callee.name for x in exchanges} == SERVICES
    assert {x.caller.name for x in exchanges} == {"tests", "shop"}
    grpc = [x for x in exchanges if x.callee.name == "inventory"]
    assert grpc and all(x.request.path == "/inventory.Inventory/Reserve" for x in grpc)
    outcomes = {r.name: r.outcome for r in records if isinstance(r, TestCase)}
    assert outcomes == {"test_shop.py::test_browse_catalog": "passed",
                        "test_shop.py::test_place_order": "passed",
                        "test_shop.py::test_out_of_stock": "passed",
                        "test_shop.py::test_declined_card": "failed",
                        "test_shop.py::test_order_a_mug": "failed"}


def _otlp(line: str) -> ExportTraceServiceRequest:
    """One line of spans.json read by OTLP's own protobuf schema, strictly (unknown
    fields refused). OTLP/JSON writes trace and span ids in hex where proto3's JSON
    mapping has base64: the only departure the specification makes."""
    doc = json.loads(line)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if s.get(key):
                        assert re.fullmatch(r"[0-9a-f]+", s[key]), s[key]
                        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
                for link in s.get("links", ()):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64encode(bytes.fromhex(link[key])).decode()
    return json_format.ParseDict(doc, ExportTraceServiceRequest())


@pytest.mark.slow
def test_spans_json_is_otlp_with_the_instrumented_services_spans_joined(demo):
    out, where = demo
    assert out.returncode == 0, out.stderr
    spans = []  # (service, span)
    for line in (where / "spans.json").read_text().splitlines():
        for rs in _otlp(line).resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}
            spans += [(service["service.name"], s) for ss in rs.scope_spans for s in ss.spans]
    by_id = {s.span_id: (svc, s) for svc, s in spans}
    # payments sent its own spans (its SERVER span and one inside it); each hangs under
    # the CLIENT span tapproxy synthesized for the shop's call, in that test's trace.
    inner = [s for svc, s in spans if svc == "payments" and s.name == "card processor"]
    assert len(inner) == 2  # test_place_order and test_declined_card
    for s in inner:
        server_svc, server = by_id[s.parent_span_id]
        assert (server_svc, server.kind) == ("payments", server.SPAN_KIND_SERVER)
        client_svc, client = by_id[server.parent_span_id]
        assert (client_svc, client.kind, client.trace_id) == (
            "shop", client.SPAN_KIND_CLIENT, s.trace_id)
    assert {svc for svc, _ in spans} >= SERVICES | {"tests"}


@pytest.mark.slow
def test_the_report_is_written_with_the_contracts_mismatch(demo):
    out, where = demo
    assert out.returncode == 0, out.stderr
    # The data is inline (compressed when large): read it as the page does.
    data = json.dumps(blocks((where / "report.html").read_text()))
    assert "/price" in data and "7.00" in data
    assert {"shop", "catalog", "inventory", "payments"} <= set(re.findall(r"\w+", data))
    assert sorted(p.name for p in where.iterdir()) == [
        "catalog.yaml", "demo.html", "demo.tap", "report.html", "spans.json"]


@pytest.mark.slow
def test_the_report_draws_the_span_payments_sent_under_its_call(demo):
    out, where = demo
    assert out.returncode == 0, out.stderr
    summary = blocks((where / "report.html").read_text())["tap-summary"]
    field = {name: i for i, name in enumerate(summary["fields"])}
    names = summary["services"]

    def seen(row: list) -> tuple:
        return names[row[field["caller"]]], row[field["method"]], row[field["target"]]

    sent = [row for row in summary["rows"] if row[field["span"]] is not None]
    assert sent and {seen(row) for row in sent} == {("payments", "INTERNAL", "card processor")}
    for row in sent:  # as `tapproxy spans --tree` shows it: under shop → payments
        parent = summary["rows"][row[field["parent"]]]
        assert seen(parent) == ("shop", "POST", "/charges")
        assert names[parent[field["callee"]]] == "payments"
        assert row[field["depth"]] == parent[field["depth"]] + 1


@pytest.mark.slow
def test_the_demo_writes_nothing_where_it_cannot_run(tmp_path):
    # No node on PATH (the command itself is found by its absolute path).
    bare = tmp_path / "bin"
    bare.mkdir()
    out = run_cli("demo", "--confdir", tmp_path / "conf", cwd=tmp_path,
                  env={**os.environ, "PATH": str(bare)})
    assert out.returncode == 2, out
    assert out.stderr.splitlines() == [
        "tapproxy: error: the demo needs node (Node.js) on PATH: apt-get install nodejs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
    assert not Path(tmp_path / "demo.tap").exists()


@pytest.mark.slow
def test_an_inner_run_that_cannot_start_is_shown_and_fails_the_demo(tmp_path):
    require_tool("node", "nodejs")
    (tmp_path / "not-a-dir").write_text("")
    out = run_cli("demo", "--confdir", tmp_path / "not-a-dir", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out
    assert "cannot create the proxy's CA there" in out.stdout  # pytest's own line
    assert out.stderr.splitlines() == ["tapproxy: error: the demo's pytest run ended with "
                                       "exit code 4, not 1 (output above)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]
