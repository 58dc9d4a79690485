"""`tapproxy show`, `export` and `import` on real captures, run as the real command.

The captures come from tests/shop_scenario.py (run once for the module) and from real traffic
through a bare `mitmdump -w`; damaged ones are cut or edited copies of the demo's.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import msgpack
import pytest
from aiohttp import web

from tapproxy.capture import open_capture
from tapproxy.capture.format import MAGIC
from tests.conftest import LoopThread, Services, free_port, run_cli, wait_for
from tests.shop_scenario import record_shop_scenario

MITMDUMP = Path(sys.executable).with_name("mitmdump")
FAILING_CARD = "4000-0000-0000-0119"

# What the demo's scenario produces, in file order: test, caller, callee, method, path, status.
DEMO_ROWS = [
    (1, "test_place_order", "shop", "inventory", "GET", "/stock/tea", 200),
    (2, "test_place_order", "shop", "payments", "POST", "/charges", 201),
    (3, "test_place_order", "tests", "shop", "POST", "/orders", 201),
    (4, "test_out_of_stock", "shop", "inventory", "GET", "/stock/cups", 200),
    (5, "test_out_of_stock", "tests", "shop", "POST", "/orders", 409),
    (6, "test_declined_card", "shop", "inventory", "GET", "/stock/tea", 200),
    (7, "test_declined_card", "shop", "payments", "POST", "/charges", 500),
    (8, "test_declined_card", "tests", "shop", "POST", "/orders", 502),
]
_ROW = re.compile(r"^(\d+)\s+(\S+)\s+(\S+) → (\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s")


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mitmconf")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, confdir) -> Path:
    """The demo's capture: 8 exchanges, 3 test cases, one failing payment."""
    path = tmp_path_factory.mktemp("demo") / "demo.tap"
    record_shop_scenario(path, confdir)
    return path


def table(stdout: str) -> list[tuple]:
    """The rows of `tapproxy show`'s table as (n, test, caller, callee, method, path, status)."""
    rows = []
    for line in stdout.splitlines():
        if line[:1].isdigit():
            m = _ROW.match(line)
            assert m, f"unparsable row {line!r}"
            n, test, caller, callee, method, path, status = m.groups()
            rows.append((int(n), test, caller, callee, method, path, int(status)))
    return rows


def show(*args) -> subprocess.CompletedProcess:
    # A wide terminal, so that the table's test names are whole (at 80 columns they are
    # cut in the middle: tests/cli/test_show_table_cli.py).
    return run_cli("show", *args, env={**os.environ, "COLUMNS": "120"})


def one_error_line(out: subprocess.CompletedProcess, path: Path | str) -> str:
    """Assert exit 2 with one `tapproxy: error:` line naming `path`; return that line."""
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(f"tapproxy: error: {path}"), line
    return line


# --- 1. listing and filtering -----------------------------------------------------------------


def test_show_lists_one_row_per_exchange(demo):
    out = show(demo)
    assert (out.returncode, out.stderr) == (0, "")
    assert table(out.stdout) == DEMO_ROWS
    assert out.stdout.splitlines()[0].split()[:3] == ["#", "test", "caller"]


@pytest.mark.parametrize(
    ("args", "numbers"),
    [
        pytest.param(["--errors"], [5, 7, 8], id="errors"),
        pytest.param(["--test", "test_declined_card"], [6, 7, 8], id="test"),
        pytest.param(["--test", "test_*card"], [6, 7, 8], id="test-glob"),
        pytest.param(["--test", "test_*"], list(range(1, 9)), id="test-glob-all"),
        pytest.param(["--service", "payments"], [2, 7], id="service"),
        pytest.param(["--service", "tests"], [3, 5, 8], id="service-as-caller"),
        pytest.param(["--test", "test_declined_card", "--errors"], [7, 8], id="test-and-errors"),
        pytest.param(["--service", "inventory", "--errors"], [], id="nothing"),
    ],
)
def test_show_filters_keep_the_table_numbers(demo, args, numbers):
    out = show(demo, *args)
    assert (out.returncode, out.stderr) == (0, "")
    assert table(out.stdout) == [DEMO_ROWS[n - 1] for n in numbers]
    if not numbers:
        assert "(no exchanges)" in out.stdout


def test_show_json_is_one_object_per_exchange(demo):
    out = show(demo, "--json")
    assert (out.returncode, out.stderr) == (0, "")
    objs = [json.loads(line) for line in out.stdout.splitlines()]
    with open_capture(demo) as reader:
        ids = [x.id for x in reader.exchanges()]
    assert [o["id"] for o in objs] == ids
    for o, (n, test, caller, callee, method, path, status) in zip(objs, DEMO_ROWS, strict=True):
        assert {"n", "id", "test", "caller", "callee", "method", "url", "status", "duration_ms",
                "request", "response"} <= set(o)
        assert (o["n"], o["test"], o["caller"]["name"], o["callee"]["name"], o["method"],
                o["status"]) == (n, test, caller, callee, method, status)
        assert re.fullmatch(rf"http://127\.0\.0\.1:\d+{re.escape(path)}", o["url"])
        assert isinstance(o["duration_ms"], float) and o["duration_ms"] >= 0
    charge = objs[6]
    assert json.loads(charge["request"]["body"]) == {"amount": 4.5, "card": FAILING_CARD}
    assert json.loads(charge["response"]["body"]) == {"error": "card processor unavailable"}
    assert ["Content-Type", "application/json"] in charge["request"]["headers"]
    assert objs[0]["request"]["body"] == ""

    errors = show(demo, "--json", "--errors")
    assert [json.loads(line)["n"] for line in errors.stdout.splitlines()] == [5, 7, 8]


def test_show_exchange_prints_headers_and_pretty_json(demo):
    out = show(demo, "--exchange", "7")
    assert (out.returncode, out.stderr) == (0, "")
    lines = [line.rstrip() for line in out.stdout.splitlines()]
    assert lines[0] == "exchange 7  shop (proxy-auth) → payments (service-map)"
    assert "test: test_declined_card (control), failed" in lines
    assert any(re.fullmatch(r"POST http://127\.0\.0\.1:\d+/charges HTTP/1\.1", x) for x in lines)
    assert "  Content-Type: application/json" in lines
    assert "HTTP/1.1 500 Internal Server Error" in lines
    # Bodies are pretty-printed, one field a line, not the compact JSON that was sent.
    assert f'  "card": "{FAILING_CARD}"' in lines
    assert '  "error": "card processor unavailable"' in lines
    assert '"amount": 4.5, "card"' not in out.stdout


def test_show_exchange_by_id_prefix(demo):
    with open_capture(demo) as reader:
        x7 = list(reader.exchanges())[6]
    by_number = show(demo, "--exchange", "7")
    by_id = show(demo, "--exchange", x7.id[:9])  # the 9th character is a '-': not a number
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == by_number.stdout
    assert f"id: {x7.id}" in by_id.stdout


def test_show_exchange_by_an_all_digit_id_prefix(tmp_path, demo):
    har, capture = tmp_path / "demo.har", tmp_path / "digits.tap"
    assert run_cli("export", demo, "--har", har).returncode == 0
    doc = json.loads(har.read_text())
    entry = doc["log"]["entries"][6]
    entry["_tapproxy"]["id"] = "12345678" + entry["_tapproxy"]["id"][8:]  # still a uuid
    har.write_text(json.dumps(doc))
    assert run_cli("import", har, "-o", capture).returncode == 0
    out = show(capture, "--exchange", "12345678")  # no exchange is numbered 12345678
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("exchange 7 ")


@pytest.mark.parametrize("which", ["999", "0", "zzzz"])
def test_show_exchange_that_does_not_exist(demo, which):
    line = one_error_line(show(demo, "--exchange", which), demo)
    assert f"no exchange '{which}'" in line


# --- 2. what is not a (whole) capture ----------------------------------------------------------


def frames(data: bytes) -> list[tuple[int, int, dict]]:
    """(start, end, decoded map) of each frame of a capture's bytes."""
    out, at = [], len(MAGIC)
    while at < len(data):
        length, _ = struct.unpack(">II", data[at:at + 8])
        end = at + 8 + length
        out.append((at, end, msgpack.unpackb(data[at + 8:end], raw=False)))
        at = end
    return out


def _truncated(demo: Path, path: Path) -> None:
    data = demo.read_bytes()
    start, end, _ = [f for f in frames(data) if f[2]["kind"] == "exchange"][7]
    path.write_bytes(data[:(start + end) // 2])  # inside the 8th exchange


def _corrupt(demo: Path, path: Path) -> None:
    data = bytearray(demo.read_bytes())
    start, end, _ = [f for f in frames(bytes(data)) if f[2]["kind"] == "exchange"][4]
    data[(start + 8 + end) // 2] ^= 0x40  # a payload byte of the 5th exchange
    path.write_bytes(bytes(data))


def _newer(demo: Path, path: Path) -> None:
    data = demo.read_bytes()
    _, end, header = frames(data)[0]
    payload = msgpack.packb({**header, "version": 99}, use_bin_type=True)
    path.write_bytes(MAGIC + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
                     + data[end:])


BAD_CAPTURES = [
    ("missing", lambda demo, p: None, "no such file", []),
    ("directory", lambda demo, p: p.mkdir(), "is a directory", []),
    ("empty", lambda demo, p: p.write_bytes(b""), "empty file", []),
    ("json", lambda demo, p: p.write_text('{"log": {"version": "1.2", "entries": []}}'),
     "not a tapproxy capture", []),
    ("random-bytes", lambda demo, p: p.write_bytes(random.Random(3).randbytes(4096)),
     "not a tapproxy capture", []),
    ("truncated", _truncated, "ends inside record", DEMO_ROWS[:7]),
    ("corrupt-byte", _corrupt, "checksum", DEMO_ROWS[:4]),
    ("newer-version", _newer, "newer", []),
]


@pytest.mark.parametrize(("make", "problem", "rows"),
                         [pytest.param(m, p, r, id=i) for i, m, p, r in BAD_CAPTURES])
def test_show_a_bad_capture_is_one_line_and_exit_2(tmp_path, demo, make, problem, rows):
    path = tmp_path / "bad.tap"
    make(demo, path)
    out = show(path)
    line = one_error_line(out, path)
    assert problem in line
    # The whole records before the damage are still listed.
    assert table(out.stdout) == rows


def test_show_a_newer_capture_says_to_upgrade(tmp_path, demo):
    path = tmp_path / "newer.tap"
    _newer(demo, path)
    line = one_error_line(show(path, "--json"), path)
    assert "99" in line and "upgrade" in line


# --- 3. HAR round trip -------------------------------------------------------------------------


def test_har_export_then_import_round_trips_exactly(tmp_path, demo):
    har, back = tmp_path / "out.har", tmp_path / "back.tap"
    out = run_cli("export", demo, "--har", har)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.strip() == f"8 exchanges written to {har}"
    doc = json.loads(har.read_text())
    assert doc["log"]["version"] == "1.2"
    assert len(doc["log"]["entries"]) == 8

    out = run_cli("import", har, "-o", back)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.strip() == f"8 exchanges imported from {har} into {back}"
    original, imported = show(demo, "--json"), show(back, "--json")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == original.stdout  # ids, bodies, timing, identity: all of it
    assert show(back).stdout == show(demo).stdout


# --- 4. importing mitmproxy flow files ---------------------------------------------------------


def flows_app() -> web.Application:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"])})

    async def order(request: web.Request) -> web.Response:
        return web.json_response({"got": await request.json()}, status=201)

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "no such thing"}, status=404)

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    app.router.add_post("/orders", order)
    app.router.add_get("/missing", missing)
    return app


@pytest.fixture(scope="module")
def mitm_flows(tmp_path_factory, confdir) -> tuple[Path, list[tuple]]:
    """A flow file written by bare `mitmdump -w` from curl traffic, and what curl saw."""
    tmp = tmp_path_factory.mktemp("mitm")
    loop = LoopThread()
    services = Services(loop)
    try:
        svc = services.start("flows", flows_app())
        port, flows = free_port(), tmp / "flows.mitm"
        err = tmp / "mitmdump.stderr"
        with open(err, "w") as stderr:
            proc = subprocess.Popen([MITMDUMP, "-q", "-p", str(port), "-w", str(flows),
                                     "--set", f"confdir={confdir}"],
                                    stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            def listening() -> bool:
                assert proc.poll() is None, err.read_text()
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_for(listening, what="mitmdump to listen")
            seen = []
            for method, path, data in [("GET", "/items/4", None),
                                       ("POST", "/orders", '{"sku": "tea"}'),
                                       ("GET", "/missing", None)]:
                args = ["--data", data, "-H", "content-type: application/json"] if data else []
                curl = subprocess.run(
                    ["curl", "-q", "-sS", "-x", f"http://127.0.0.1:{port}", "--noproxy", "",
                     "-w", "\n%{http_code}", *args, f"{svc.url}{path}"],
                    capture_output=True, text=True, timeout=30, check=True)
                body, _, status = curl.stdout.rpartition("\n")
                seen.append((method, path, int(status), data or "", body))
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, err.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        services.stop_all()
        loop.close()
    return flows, seen


def test_import_mitmproxy_flows(tmp_path, mitm_flows):
    flows, seen = mitm_flows
    output = tmp_path / "flows.tap"
    out = run_cli("import", flows, "-o", output)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.strip() == f"3 exchanges imported from {flows} into {output}"
    listed = show(output, "--json")
    assert listed.returncode == 0, listed.stderr
    objs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(o["method"], o["url"].split("/", 3)[3], o["status"], o["request"]["body"],
             o["response"]["body"]) for o in objs] == [
        (m, p.lstrip("/"), s, q, r) for m, p, s, q, r in seen]
    assert [s[2] for s in seen] == [200, 201, 404]
    for o in objs:
        # A flow file names no caller: it stays visibly an address.
        assert (o["caller"]["name"], o["caller"]["source"]) == ("127.0.0.1", "peer")
    assert table(show(output).stdout)[1][2] == "?127.0.0.1"


def _truncated_har(demo: Path, tmp: Path, path: Path) -> None:
    run_cli("export", demo, "--har", tmp / "full.har")
    text = (tmp / "full.har").read_text()
    path.write_text(text[: len(text) // 2])


def _truncated_flows(flows: Path, path: Path) -> None:
    data = flows.read_bytes()
    first_len = data.split(b":", 1)[0]
    end = len(first_len) + 1 + int(first_len) + 1  # tnetstring: LEN ':' payload type-char
    path.write_bytes(data[:end + 40])  # one whole flow, then part of the next


BAD_IMPORTS = [
    ("missing", lambda demo, flows, tmp, p: None, "cannot read"),
    ("directory", lambda demo, flows, tmp, p: p.mkdir(), "cannot read"),
    ("garbage", lambda demo, flows, tmp, p: p.write_bytes(random.Random(5).randbytes(3000)),
     "not a HAR or mitmproxy flow file"),
    ("truncated-har", lambda demo, flows, tmp, p: _truncated_har(demo, tmp, p),
     "not a HAR file"),
    ("truncated-flows", lambda demo, flows, tmp, p: _truncated_flows(flows, p),
     "cut or corrupt after"),
]


@pytest.mark.parametrize(("make", "problem"),
                         [pytest.param(m, p, id=i) for i, m, p in BAD_IMPORTS])
def test_import_bad_input_is_one_line_and_exit_2(tmp_path, demo, mitm_flows, make, problem):
    source = tmp_path / "input"
    make(demo, mitm_flows[0], tmp_path, source)
    out = run_cli("import", source, "-o", tmp_path / "y.tap")
    line = one_error_line(out, source)
    assert problem in line


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(BAD_IMPORTS[0][1], id="missing"),
        pytest.param(BAD_IMPORTS[3][1], id="truncated-har"),
        pytest.param(BAD_IMPORTS[2][1], id="garbage"),
        pytest.param(BAD_IMPORTS[4][1], id="truncated-flows"),
    ],
)
def test_a_failed_import_leaves_no_capture_behind(tmp_path, demo, mitm_flows, make):
    source, output = tmp_path / "input", tmp_path / "y.tap"
    make(demo, mitm_flows[0], tmp_path, source)
    assert run_cli("import", source, "-o", output).returncode == 2
    assert not output.exists(), show(output).stdout


def test_importing_an_empty_file_is_an_error(tmp_path):
    source = tmp_path / "empty.har"
    source.write_bytes(b"")
    out = run_cli("import", source, "-o", tmp_path / "y.tap")
    assert "empty file" in one_error_line(out, source)
    assert not (tmp_path / "y.tap").exists()


def test_importing_a_har_dated_year_9999_names_the_entry(tmp_path, demo):
    har = tmp_path / "far.har"
    assert run_cli("export", demo, "--har", har).returncode == 0
    doc = json.loads(har.read_text())
    doc["log"]["entries"][2]["startedDateTime"] = "9999-12-31T23:59:59.999Z"
    for entry in doc["log"]["entries"]:  # as another tool's HAR: times from the ISO date
        del entry["_tapproxy"]
    har.write_text(json.dumps(doc))
    out = run_cli("import", har, "-o", tmp_path / "far.tap")
    line = one_error_line(out, har)
    assert "entry 2 has a startedDateTime '9999-12-31T23:59:59.999Z' outside" in line


# --- 5. output files: whole or not at all, owner-only ------------------------------------------


def _mistyped_fifth_exchange(demo: Path, path: Path) -> None:
    """The demo with a valid-CRC 5th exchange whose method is a number: readers fail there,
    after the first test's exchanges (and spans) are out."""
    data = demo.read_bytes()
    start, end, rec = [f for f in frames(data) if f[2]["kind"] == "exchange"][4]
    rec["request"]["method"] = 7
    payload = msgpack.packb(rec, use_bin_type=True)
    path.write_bytes(data[:start] + struct.pack(">II", len(payload), zlib.crc32(payload))
                     + payload + data[end:])


@pytest.mark.parametrize("command", [["export", "--har"], ["spans", "--out"]],
                         ids=["export-har", "spans-out"])
def test_a_failed_export_leaves_the_existing_file_as_it_was(tmp_path, demo, command):
    bad, target = tmp_path / "bad.tap", tmp_path / "previous.out"
    _mistyped_fifth_exchange(demo, bad)
    target.write_text("the previous run's output\n")
    out = run_cli(command[0], bad, command[1], target)
    assert out.returncode != 0
    assert target.read_text() == "the previous run's output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tap", "previous.out"]


@pytest.mark.parametrize("command", [["export", "--har"], ["spans", "--out"], ["import", "-o"]],
                         ids=["export-har", "spans-out", "import"])
def test_output_files_are_readable_by_their_owner_only(tmp_path, demo, command):
    source = demo
    if command[0] == "import":
        source = tmp_path / "in.har"
        assert run_cli("export", demo, "--har", source).returncode == 0
    target = tmp_path / "new.out"
    out = run_cli(command[0], source, command[1], target)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(demo.stat().st_mode) == 0o600  # a recorded capture too


def test_export_to_stdout_writes_through_the_device(demo):
    out = run_cli("export", demo, "--har", "/dev/stdout")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout.rsplit("\n8 exchanges", 1)[0])["log"]["entries"]) == 8


# --- 6. recorded data cannot drive the terminal -----------------------------------------------

EVIL = "\x1b]0;pwned\x07"  # sets the terminal's title; a bare ESC starts any sequence
EVIL_SHOWN = "\\x1b]0;pwned\\x07"
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")


@pytest.fixture
def hostile_capture(tmp_path) -> Path:
    """A capture whose every recorded string carries terminal escapes, as a service or test
    could send them (written by the real writer, so it holds exactly what a recording would)."""
    from tapproxy.capture import CaptureWriter, Exchange, Party, TestCase, new_header
    from tapproxy.capture.model import ErrorInfo, Headers, Request, Response, Timing

    t0 = 1_700_000_000_000_000_000
    path = tmp_path / "hostile.tap"
    writer = CaptureWriter(path, new_header())
    name = f"test_{EVIL}"
    for i, (status, error) in enumerate([(200, None), (500, ErrorInfo("reset", f"gone{EVIL}"))]):
        writer.write(Exchange(
            id=f"hostile{i}",
            caller=Party(f"shop{EVIL}", "proxy-auth"),
            callee=Party(f"pay\u202eyap{EVIL}", "service-map"),
            request=Request("POST", "http", "127.0.0.1", 80, f"/x{EVIL}?q={EVIL}", "HTTP/1.1",
                            Headers(((f"x-{EVIL}", f"v{EVIL}\r"), ("content-type", "text/plain"))),
                            f"line one{EVIL}\nline two\x9b31m\n".encode()),
            response=Response(status, f"OK{EVIL}", "HTTP/1.1",
                              Headers((("content-type", "application/json"),)),
                              json.dumps({"k": f"v{EVIL}\x7f"}).encode()),
            error=error,
            timing=Timing(request_start=t0 + i, request_end=t0 + 10, response_start=t0 + 20,
                          response_end=t0 + 30),
            test=name, test_source="control", redacted=(f"request.header:{EVIL}",)))
    writer.write(TestCase(name=name, started=t0 - 1, ended=t0 + 40, outcome=f"failed{EVIL}"))
    writer.close()
    return path


@pytest.mark.parametrize("args", [[], ["--exchange", "2"], ["--json"], ["--errors"]],
                         ids=["table", "exchange", "json", "errors"])
def test_show_prints_recorded_control_characters_escaped(hostile_capture, args):
    out = show(hostile_capture, *args)
    assert out.returncode == 0, out.stderr
    assert not _CONTROL.findall(out.stdout + out.stderr)
    if args != ["--json"]:
        assert EVIL_SHOWN in out.stdout
    else:
        assert [json.loads(line)["test"] for line in out.stdout.splitlines()] == [
            f"test_{EVIL}"] * 2  # still the recorded value, once parsed


def test_show_exchange_escapes_every_field(hostile_capture):
    out = show(hostile_capture, "--exchange", "2").stdout
    for shown in [f"test: test_{EVIL_SHOWN}", f"x-{EVIL_SHOWN}: v{EVIL_SHOWN}\\x0d",
                  f"/x{EVIL_SHOWN}?q={EVIL_SHOWN}", f"line one{EVIL_SHOWN}", "two\\x9b31m",
                  f"gone{EVIL_SHOWN}", f"OK{EVIL_SHOWN}", f"request.header:{EVIL_SHOWN}",
                  "pay\\u202eyap", f"failed{EVIL_SHOWN}"]:
        assert shown in out, shown


def test_spans_tree_prints_recorded_control_characters_escaped(hostile_capture):
    out = run_cli("spans", hostile_capture, "--tree")
    assert out.returncode == 0, out.stderr
    assert not _CONTROL.findall(out.stdout + out.stderr)
    assert f"test_{EVIL_SHOWN}" in out.stdout and f"shop{EVIL_SHOWN}" in out.stdout


def test_spans_to_a_dead_otlp_endpoint_is_our_one_line_only(demo):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = run_cli("spans", demo, "--otlp", url)
    line = one_error_line(out, f"{url}/v1/traces")
    assert "did not accept the spans" in line


def test_spans_tree_lines_keep_within_80_columns(tmp_path):
    from tests.spans.build import exchange, write_capture

    long = "/orders/" + "x" * 120
    capture = write_capture(tmp_path / "run.tap", [
        exchange("a", "tests", "gateway", 0, 200, path=long, test="t::a"),
        exchange("b", "gateway", "payments-service-with-a-long-name", 5, 190, path=long,
                 test="t::a")])
    out = run_cli("spans", capture, "--tree")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, max(lines, key=len)
    # One line per call, and a cut one says so (rich cropped it silently before).
    assert [line.lstrip(" │")[:4] for line in lines[1:]] == ["└── ", "└── "], lines
    assert all(line.endswith("…") for line in lines[1:]), lines
