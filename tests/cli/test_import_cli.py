"""`tapproxy import` writes only captures it can read back, and masks credentials with
the same options as `record`."""

from __future__ import annotations

import json

import pytest

from tapproxy.capture.har import export_har
from tests.cli.test_inspect_cli import one_error_line
from tests.conftest import run_cli
from tests.spans.build import exchange


def tapproxy_har(tmp_path, *exchanges) -> tuple:
    har = tmp_path / "in.har"
    export_har(exchanges or [exchange("a", "tests", "api", 0, 10),
                             exchange("b", "tests", "api", 20, 30)], har, "9.9")
    return har, json.loads(har.read_text())


def test_a_har_entry_a_capture_cannot_hold_is_refused_naming_file_entry_and_field(tmp_path):
    har, doc = tapproxy_har(tmp_path)
    doc["log"]["entries"][1]["_tapproxy"]["target"]["port"] = -5
    har.write_text(json.dumps(doc))
    out = run_cli("import", har, "-o", tmp_path / "run.tap")
    line = one_error_line(out, har)
    assert line == (f"tapproxy: error: {har}: entry 1 cannot be stored: field request.port "
                    "is -5, out of range 0..65535")
    assert not (tmp_path / "run.tap").exists()


@pytest.mark.parametrize("timings", ["x", 3, ["send", 1]])
def test_har_timings_that_are_not_an_object_are_refused(tmp_path, timings):
    har, doc = tapproxy_har(tmp_path)
    for entry in doc["log"]["entries"]:  # as another tool's HAR: timings from `timings`
        del entry["_tapproxy"]
    doc["log"]["entries"][1]["timings"] = timings
    har.write_text(json.dumps(doc))
    out = run_cli("import", har, "-o", tmp_path / "run.tap")
    line = one_error_line(out, har)
    assert line.startswith(f"tapproxy: error: {har}: entry 1 has a bad timings "
                           f"({type(timings).__name__} ")
    assert not (tmp_path / "run.tap").exists()


def test_what_import_writes_show_reads(tmp_path):
    har, _ = tapproxy_har(tmp_path)
    assert run_cli("import", har, "-o", tmp_path / "run.tap").returncode == 0
    out = run_cli("show", tmp_path / "run.tap", "--json")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2


def test_import_takes_the_redact_options_of_record(tmp_path):
    body = b'{"card": "4111", "nested": {"pin": "1234", "keep": 1}, "note": "hi"}'
    har, _ = tapproxy_har(tmp_path, exchange(
        "a", "tests", "api", 0, 10, method="POST", path="/pay?member=77&q=1",
        headers=[("content-type", "application/json"), ("x-shop-session", "s3cr3t"),
                 ("x-plain", "ok")], request_body=body))
    out = run_cli("import", har, "-o", tmp_path / "run.tap", "--redact", "card",
                  "--redact", "member", "--redact-header", "x-shop-session",
                  "--redact-json", "$.nested.pin", "--redact", "$.note")
    assert out.returncode == 0, out.stderr
    [x] = [r for r in open_capture_list(tmp_path / "run.tap")]
    assert json.loads(x.request.body) == {"card": "<redacted>",
                                          "nested": {"pin": "<redacted>", "keep": 1},
                                          "note": "<redacted>"}
    assert x.request.headers.get("x-shop-session") == "<redacted>"
    assert x.request.headers.get("x-plain") == "ok"
    assert x.request.path == "/pay?member=%3Credacted%3E&q=1"
    assert set(x.redacted) == {"request.header:x-shop-session", "request.query:member",
                               "request.json:$.card", "request.json:$.nested.pin",
                               "request.json:$.note"}


def test_import_with_a_bad_json_path_is_one_line(tmp_path):
    har, _ = tapproxy_har(tmp_path)
    out = run_cli("import", har, "-o", tmp_path / "run.tap", "--redact-json", "$.[")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("tapproxy: error: bad --redact/--redact-json path '$.['")
    assert not (tmp_path / "run.tap").exists()


def open_capture_list(path):
    from tapproxy.capture import open_capture

    with open_capture(path) as reader:
        return list(reader)
