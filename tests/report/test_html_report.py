"""`tapproxy report` without a browser: what the file holds, bad input, contracts.

The page's data is read back from the written file the way the page reads it (a JSON
block, or raw deflate in base64), so these tests see what a browser would be given.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import zlib
from pathlib import Path

import pytest

from tapproxy.capture.format import FRAME, MAGIC
from tapproxy.report.html.page import embed_json
from tests.conftest import TAPPROXY, run_cli
from tests.report.recorded_shop import HOSTILE_TEST, Shop
from tests.report.test_report_browser import _generated_capture

_BLOCK = re.compile(r'<script type="application/json" id="([\w-]+)" '
                    r'data-encoding="([\w+-]+)">(.*?)</script>', re.S)


def blocks(html: str) -> dict[str, object]:
    """Each JSON block of the page, decoded as the page decodes it."""
    out = {}
    for block_id, encoding, text in _BLOCK.findall(html):
        if encoding == "deflate-raw+base64":
            text = zlib.decompress(base64.b64decode(text), -zlib.MAX_WBITS).decode("ascii")
        out[block_id] = json.loads(text)
    return out


def test_embedded_json_cannot_end_its_script_element() -> None:
    hostile = {"name": "</script><script>alert(1)</script>", "x": "a & b <!-- \u2028\u2029",
               "bytes": "\udcff"}  # a byte that was not UTF-8, kept by surrogateescape
    encoding, text = embed_json(hostile, compress=False)
    assert encoding == "json"
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == hostile
    encoding, text = embed_json(hostile, compress=True)
    assert encoding == "deflate-raw+base64" and re.fullmatch(r"[A-Za-z0-9+/=]+", text)
    assert json.loads(zlib.decompress(base64.b64decode(text), -zlib.MAX_WBITS)) == hostile


@pytest.fixture
def shop_capture(services, start_proxy) -> Path:
    return Shop(services).record(start_proxy)


def test_the_report_holds_every_test_its_story_and_the_map(shop_capture, tmp_path) -> None:
    out = tmp_path / "r.html"
    r = run_cli("report", shop_capture, "-o", out)
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr.startswith(f"report written to {out}: 8 exchanges, 2 tests,")
    html = out.read_text()
    assert HOSTILE_TEST not in html  # only ever inside escaped JSON
    assert "<script" not in html.split("<body>")[1].split('<script type="application/json"')[0]
    data = blocks(html)
    summary, details = data["tap-summary"], data["tap-details"]
    assert [t["name"] for t in summary["tests"]] == ["test_checkout_0", HOSTILE_TEST]
    failing = summary["tests"][1]
    assert failing["outcome"] == "failed" and failing["count"] == 4
    root = failing["story"]["root"]
    f = {name: i for i, name in enumerate(summary["fields"])}
    services = summary["services"]
    row = summary["rows"][root["row"]]
    assert (services[row[f["caller"]]], services[row[f["callee"]]], row[f["status"]]) == (
        "orders", "payments", 500)
    assert root["why"] == "status 500; it made no calls"
    assert [c[1] for c in failing["story"]["consequences"]] == ["propagated", "propagated"]
    # Parentage, and how it was found: the test's call, then nested by timing.
    rows = summary["rows"][failing["first"]:failing["first"] + 4]
    assert [r[f["inference"]] for r in rows] == ["root", "timing", "timing", "timing"]
    assert [r[f["depth"]] for r in rows] == [0, 1, 2, 2]
    edges = {(services[e["a"]], services[e["b"]]): e for e in summary["edges"]}
    assert set(edges) == {("tests", "gateway"), ("gateway", "orders"),
                          ("orders", "inventory"), ("orders", "payments")}
    assert edges[("orders", "payments")]["count"] == 2
    assert edges[("orders", "payments")]["rate"] == 0.5
    assert sum(b[2] for b in edges[("orders", "payments")]["hist"]) == 2
    detail = details[root["row"]]
    assert detail["response"]["line"] == "HTTP/1.1 500 Internal Server Error"
    assert '"error": "card declined"' in detail["response"]["body"]


def test_contract_mismatches_show_expected_and_actual(shop_capture, tmp_path) -> None:
    contract = tmp_path / "gateway.yaml"
    contract.write_text("tapproxy: 1\ninteractions:\n  - id: checkout\n    request: "
                        "{method: POST, path: /checkout}\n    response: {status: 200}\n")
    out = tmp_path / "r.html"
    r = run_cli("report", shop_capture, "-o", out, "--contract", contract)
    assert r.returncode == 0, r.stderr
    summary = blocks(out.read_text())["tap-summary"]
    mismatches = summary["mismatches"]
    assert [(m["kind"], m["expected"], m["actual"]) for m in mismatches] == [
        ("status", "200", "201"), ("status", "200", "502")]
    # In the passing test the drift is the first point of failure: the contract says so.
    story = summary["tests"][0]["story"]
    assert story["root"]["label"] == "contract"
    assert story["root"]["why"].startswith("contract mismatch: ")
    bad = run_cli("report", shop_capture, "-o", out, "--contract", tmp_path / "none.yaml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "none.yaml: cannot read" in bad.stderr


def _capture(tmp_path: Path, index: bool = True) -> Path:
    capture = tmp_path / "run.tap"
    _generated_capture(capture, 3, 4, index)
    return capture


def test_a_cut_off_capture_shows_every_complete_record_and_where_it_stopped(tmp_path) -> None:
    capture = _capture(tmp_path, index=False)  # as a killed recorder leaves it
    data = capture.read_bytes()
    capture.write_bytes(data[:-40])  # the last record (a test case) cut mid-frame
    out = tmp_path / "r.html"
    r = run_cli("report", capture, "-o", out)
    assert r.returncode == 2
    last = r.stderr.splitlines()[-1]
    assert last.startswith(f"tapproxy: error: {capture}: ends inside record 15 at byte")
    html = out.read_text()
    assert 'id="banner"' in html and "Incomplete capture:" in html
    summary = blocks(html)["tap-summary"]
    assert len(summary["rows"]) == 12
    assert summary["problem"].startswith(f"{capture}: ends inside record 15")
    assert [t["outcome"] for t in summary["tests"]] == ["failed", "passed", None]


def test_a_damaged_record_ends_the_reading_there(tmp_path) -> None:
    capture = _capture(tmp_path)
    data = bytearray(capture.read_bytes())
    at = len(MAGIC)
    for _ in range(8):  # past the header and 7 records, to the payload of the 8th
        at += FRAME.size + FRAME.unpack_from(data, at)[0]
    data[at + FRAME.size + 20] ^= 0xFF  # its checksum no longer holds
    capture.write_bytes(bytes(data))
    out = tmp_path / "r.html"
    r = run_cli("report", capture, "-o", out)
    assert r.returncode == 2
    assert "is corrupt: checksum mismatch" in r.stderr.splitlines()[-1]
    summary = blocks(out.read_text())["tap-summary"]
    assert len(summary["rows"]) == 6  # the 7 records before it: 6 calls and a test case
    assert "the records before it are shown" in summary["problem"]


@pytest.mark.parametrize("where", ["missing/r.html", "."])
def test_an_output_that_cannot_be_written_is_one_line_and_no_file(tmp_path, where) -> None:
    capture = _capture(tmp_path)
    before = sorted(os.listdir(tmp_path))
    r = run_cli("report", capture, "-o", tmp_path / where)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tapproxy: error: ")
    assert "cannot write" in r.stderr or "is a directory" in r.stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no part left


def test_a_missing_capture_is_one_line(tmp_path) -> None:
    r = run_cli("report", tmp_path / "none.tap", "-o", tmp_path / "r.html")
    assert r.returncode == 2 and r.stderr.strip().endswith("none.tap: no such file")
    assert not (tmp_path / "r.html").exists()


def test_a_progress_bar_only_on_a_terminal(tmp_path) -> None:
    capture = _capture(tmp_path)
    plain = run_cli("report", capture, "-o", tmp_path / "a.html")
    assert "reading" not in plain.stderr and plain.stderr.count("\n") == 1
    main, side = os.openpty()
    try:
        r = subprocess.run([*TAPPROXY, "report", str(capture), "-o", str(tmp_path / "b.html")],
                           stdout=subprocess.PIPE, stderr=side, timeout=60,
                           env={**os.environ, "COLUMNS": "80"})
        os.close(side)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert r.returncode == 0
    assert b"reading" in shown


def test_spans_a_service_sent_are_rows_under_their_parent(tmp_path) -> None:
    from tests.report.sent_spans import HOSTILE_SPAN, sent_spans_capture

    out = tmp_path / "r.html"
    r = run_cli("report", sent_spans_capture(tmp_path / "run.tap"), "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"report written to {out}: 2 exchanges, 1 tests,")
    data = blocks(out.read_text())
    summary, details = data["tap-summary"], data["tap-details"]
    field = {name: i for i, name in enumerate(summary["fields"])}

    def seen(row: list) -> tuple:
        return (summary["services"][row[field["caller"]]], row[field["method"]],
                row[field["target"]], row[field["parent"]], row[field["depth"]],
                row[field["span"]])

    # Payments' SERVER span is the exchange's own server half: no row of its own. Its
    # INTERNAL span goes under the call, the span under that one deeper, and the span
    # whose parent is nowhere in the test at the end.
    assert [seen(row) for row in summary["rows"]] == [
        ("tests", "POST", "/checkout", -1, 0, None),
        ("shop", "POST", "/charges", 0, 1, None),
        ("payments", "INTERNAL", "card processor", 1, 2, "error"),
        ("payments", "CLIENT", HOSTILE_SPAN, 2, 3, "unset"),
        ("payments", "INTERNAL", "cache warm", -1, 0, "unset"),
    ]
    card = summary["rows"][2]
    assert card[field["failed"]] == 1 and card[field["inference"]] == "span"
    assert summary["tests"][0]["count"] == 2 and summary["tests"][0]["spans"] == 3
    span = details[2]["span"]
    assert (span["service"], span["kind"], span["name"], span["status"]) == (
        "payments", "INTERNAL", "card processor", "error: card declined")
    assert ["card.network", "visa"] in span["attributes"]
    assert ["card.retries", "2"] in span["attributes"]
    assert details[3]["span"]["attributes"] == [["note", "<img src=x onerror=alert(2)>"]]
    assert "<script>alert('span')" not in out.read_text()  # the page holds it as data


def test_spans_of_no_recorded_call_go_to_no_test_and_a_damaged_batch_to_none(tmp_path) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tapproxy.capture import SpanBatch, TestCase
    from tapproxy.spans.context import format_traceparent
    from tests.report.sent_spans import _payments_spans
    from tests.spans.build import MS, T0, exchange, write_capture

    elsewhere = encode_spans(_payments_spans(format_traceparent(0x1234, 0x5678)))
    for payload, tests in [(elsewhere.SerializeToString(), [["t", 1, 0], ["(no test)", 0, 4]]),
                           (b"\xff\xfe not protobuf", [["t", 1, 0]])]:
        capture = write_capture(tmp_path / "run.tap", [
            exchange("c1", "tests", "shop", 0, 50, test="t"),
            SpanBatch(T0, "application/x-protobuf", payload),
            TestCase("t", T0, T0 + 60 * MS, "passed")], meta={"otlp_receive": True})
        out = tmp_path / "r.html"
        r = run_cli("report", capture, "-o", out)
        assert r.returncode == 0 and "1 exchanges, " in r.stderr, r.stderr
        summary = blocks(out.read_text())["tap-summary"]
        assert [[t["name"], t["count"], t["spans"]] for t in summary["tests"]] == tests
