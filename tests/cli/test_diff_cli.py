"""`tapproxy diff` on captures of real aiohttp services recorded through the real proxy:
two recordings of one deterministic run report no difference; a changed service is
named by field; bad input is one line and exit code 2."""

from __future__ import annotations

import datetime
import itertools
import json
import uuid
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import CaptureWriter, new_header
from tapproxy.supervisor.options import ServiceSpec
from tests.conftest import run_cli

PRICE = {"A": 5}


def orders_app() -> web.Application:
    """Answers with what differs on every run (ids, times, a counter) around data that
    does not (prices), unless a test changes PRICE."""
    counter = itertools.count(1)
    started = datetime.datetime.now(datetime.UTC)

    def now() -> str:
        return datetime.datetime.now(datetime.UTC).isoformat()

    async def health(request: web.Request) -> web.Response:
        uptime = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        return web.json_response({"status": "up", "uptime_s": uptime})

    async def create(request: web.Request) -> web.Response:
        sku = (await request.json())["sku"]
        return web.json_response({"id": next(counter), "ref": str(uuid.uuid4()),
                                  "createdAt": now(), "sku": sku, "price": PRICE[sku]},
                                 status=201, headers={"x-request-id": str(uuid.uuid4())})

    async def get(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"]), "sku": "A",
                                  "price": PRICE["A"], "items": [{"n": 1}, {"n": 2}]})

    async def report(request: web.Request) -> web.Response:
        return web.Response(text=f"orders report\ngenerated {now()}\ntotal {PRICE['A']}\n")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/orders", create)
    app.router.add_get("/orders/{id}", get)
    app.router.add_get("/report", report)
    return app


@pytest.fixture
def record(start_proxy, services, tmp_path):
    """record(name) → a capture of one run of test_checkout against `orders`."""
    svc = services.start("orders", orders_app())

    def run(name: str) -> Path:
        proxy = start_proxy(output=tmp_path / f"{name}.tap",
                            services=(ServiceSpec("orders", "127.0.0.1", svc.port),))
        via = {"http": proxy.url_as("tests")}
        ctl = proxy.control_url
        assert requests.post(f"{ctl}/tests/start", json={"name": "test_checkout"},
                             timeout=10).ok
        for _ in range(2):
            assert requests.get(f"{svc.url}/health", proxies=via, timeout=10).ok
        ids = [requests.post(f"{svc.url}/orders", json={"sku": "A"}, proxies=via,
                             timeout=10).json()["id"] for _ in range(2)]
        assert requests.get(f"{svc.url}/orders/{ids[0]}", proxies=via, timeout=10).ok
        assert requests.get(f"{svc.url}/report", proxies=via, timeout=10).ok
        assert requests.post(f"{ctl}/tests/end", json={"name": "test_checkout",
                                                       "outcome": "passed"}, timeout=10).ok
        proxy.stop()
        return proxy.capture

    yield run
    PRICE["A"] = 5


def assert_fits(text: str) -> None:
    """Within 80 columns, but for the captures' paths (whole, to paste)."""
    lines = [line for line in text.splitlines() if not line.startswith(("expected:",
                                                                          "actual:"))]
    assert all(len(line) <= 80 for line in lines), text


def test_two_recordings_of_one_deterministic_run_report_no_difference(record) -> None:
    a, b = record("a"), record("b")
    out = run_cli("diff", a, b)
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.splitlines()[-1]
    assert last.startswith("no differences: 6 paired exchanges equal; ignored as noise: ")
    assert int(last.split(": ")[-1].split()[0]) >= 6  # ids, refs, times, uptimes, the line
    assert out.stderr == ""


def test_a_recording_against_a_copy_of_itself_is_equal_with_nothing_set_aside(
        record, tmp_path) -> None:
    a = record("a")
    copy = tmp_path / "copy.tap"
    copy.write_bytes(a.read_bytes())
    out = run_cli("diff", a, copy)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == ("no differences: 6 paired exchanges equal; "
                                           "ignored as noise: 0 fields")
    js = run_cli("diff", a, copy, "--format", "json")
    assert js.returncode == 0
    assert json.loads(js.stdout.splitlines()[-1]) == {
        "kind": "summary", "equal": True, "pairs": 6, "differing": 0, "removed": 0,
        "added": 0, "noise_fields": 0}


def test_a_changed_service_is_named_by_field_expected_beside_actual(record) -> None:
    a = record("a")
    PRICE["A"] = 6
    b = record("b")
    out = run_cli("diff", a, b)
    assert out.returncode == 1, out.stdout + out.stderr
    assert_fits(out.stdout)
    lines = out.stdout.splitlines()
    assert "test test_checkout" in lines
    assert "≠ #3 ↔ #3  tests → orders  POST /orders" in lines
    assert "≠ #5 ↔ #5  tests → orders  GET /orders/{id}" in lines
    body_lines = [line.split() for line in lines if line.strip().startswith("body /price")]
    assert body_lines == [["body", "/price", "5", "6"]] * 3
    assert ["body", "line", "3", "total", "5", "total", "6"] in [line.split() for line in lines]
    assert lines[-1] == ("4 of 6 paired exchanges differ, 0 removed, 0 added; ignored as "
                         "noise: " + lines[-1].split("noise: ")[1])

    js = run_cli("diff", a, b, "--format", "json")
    assert js.returncode == 1
    items = [json.loads(line) for line in js.stdout.splitlines()]
    assert items[-1]["kind"] == "summary" and items[-1]["differing"] == 4
    changes = [c for i in items[:-1] for c in i["changes"]]
    assert {"part": "response.body", "path": "/price", "kind": "changed", "expected": 5,
            "actual": 6} in changes


def test_ignore_and_show_noise(record) -> None:
    a = record("a")
    PRICE["A"] = 6
    b = record("b")
    out = run_cli("diff", a, b, "--ignore", "/price", "--ignore", "/**/total")
    # the report's text line is not a JSON pointer: it still differs
    assert out.returncode == 1 and "body /price" not in out.stdout
    assert "1 of 6 paired exchanges differ" in out.stdout
    out = run_cli("diff", a, a, "--show-noise")
    assert out.returncode == 0
    noise = run_cli("diff", a, b, "--show-noise", "--format", "json")
    learned = json.loads(noise.stdout.splitlines()[-1])["learned_noise"]
    assert {"route": "orders GET /health", "pointer": "/uptime_s"} in learned


def test_two_exchanges_of_one_capture(record) -> None:
    a = record("a")
    same = run_cli("diff", a, "--exchange", "1", "--exchange", "2")  # two health polls
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[-1] == "no differences; ignored as noise: 1 field"
    other = run_cli("diff", a, "--exchange", "3", "--exchange", "5")  # create vs get
    assert other.returncode == 1
    assert_fits(other.stdout)
    assert other.stdout.splitlines()[:6] == [
        f"expected: {a} #3", f"actual:   {a} #5", "test test_checkout",
        "≠ #3 ↔ #5  tests → orders  POST /orders", "  #5: tests → orders  GET /orders/{id}",
        f"    {'':<26} {'expected':<24} actual"]


def empty_capture(path: Path) -> Path:
    CaptureWriter(path, new_header()).close()
    return path


@pytest.mark.parametrize("args, message", [
    (["{dir}/missing.tap", "{a}"], "tapproxy: error: {dir}/missing.tap: no such file"),
    (["{a}", "{empty}"], "tapproxy: error: {empty}: no exchanges to compare"),
    (["{a}", "{a}", "--ignore", "items/*"],
     "tapproxy: error: --ignore: bad JSON pointer glob 'items/*'"),
    (["{a}", "{a}", "--latency-threshold", "soon"],
     "tapproxy: error: bad --latency-threshold 'soon'"),
    (["{a}"], "tapproxy: error: give two captures, or one and --exchange twice"),
    (["{a}", "--exchange", "1", "--exchange", "99"], "tapproxy: error: {a}: no exchange '99'"),
    (["{a}", "{a}", "--format", "xml"], "tapproxy: error: bad --format 'xml'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message) -> None:
    from tests.spans.build import exchange, write_capture

    a = write_capture(tmp_path / "a.tap", [exchange("x", "a", "b", 0, 5)])
    empty = empty_capture(tmp_path / "empty.tap")
    fill = {"dir": tmp_path, "a": a, "empty": empty}
    out = run_cli("diff", *(arg.format(**fill) for arg in args))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith(message.format(**fill)), line


# --- replay --against: the recorded requests re-sent to a live service -----------------

def against(capture, url, capsys, *args, **kw) -> tuple[int, str]:
    from tapproxy.cli.compare import run_against

    code = run_against(capture, f"orders={url}", *args, **kw)
    return code, capsys.readouterr().out


def test_against_the_unchanged_service_nothing_differs(record, services, capsys) -> None:
    a = record("a")
    [svc] = services.started
    code, out = against(a, svc.url, capsys)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("no differences: 6 re-sent exchanges to orders equal; "
                                           "ignored as noise: ")


def test_against_a_service_whose_behaviour_changed(record, services, capsys) -> None:
    a = record("a")
    [svc] = services.started
    PRICE["A"] = 7
    code, out = against(a, svc.url, capsys)
    assert code == 1
    assert_fits(out)
    lines = out.splitlines()
    assert lines[:2] == [f"expected: {a} (recorded orders)", f"actual:   {svc.url} (live)"]
    assert "≠ #3 ↔ #live  tests → orders  POST /orders" in lines
    assert [line.split() for line in lines if "body /price" in line] == [
        ["body", "/price", "5", "7"]] * 3
    assert lines[-1].startswith("4 of 6 re-sent exchanges to orders differ; ignored as "
                           "noise: ")

    code, out = against(a, svc.url, capsys, output_format="json", ignore=["/price"])
    summary = json.loads(out.splitlines()[-1])
    assert (code, summary["differing"], summary["pairs"]) == (1, 1, 6)  # the report's line


def test_against_a_service_that_is_down_every_request_is_refused(record, capsys) -> None:
    from tests.conftest import free_port

    a = record("a")
    code, out = against(a, f"http://127.0.0.1:{free_port()}", capsys)
    assert code == 1
    errors = [line.split() for line in out.splitlines() if line.strip().startswith("error")]
    assert errors == [["error", "(none)", "refused"]] * 6


def test_against_an_unknown_service_names_those_recorded(record, capsys) -> None:
    from tapproxy.cli.compare import run_against
    from tapproxy.errors import DiffError, UsageError

    a = record("a")
    with pytest.raises(DiffError, match=r"no exchanges to 'payments' \(callees: orders\)"):
        run_against(a, "payments=http://127.0.0.1:1")
    with pytest.raises(UsageError, match="bad --against 'orders'"):
        run_against(a, ["orders=http://127.0.0.1:1", "orders"])  # all checked first
    assert capsys.readouterr().out == ""


def test_a_capture_cut_short_is_compared_up_to_where_it_stops_then_exit_2(tmp_path) -> None:
    from tests.spans.build import exchange, write_capture

    records = [exchange(f"x{i}", "a", "b", i, i + 1, path=f"/n/{i}") for i in range(5)]
    a = write_capture(tmp_path / "a.tap", records)
    from tapproxy.capture import open_capture

    with open_capture(a) as reader:
        last = [reader.position for _ in reader.exchanges()][-1]
    cut = tmp_path / "cut.tap"
    # the last exchange cut off, as by a killed recorder (and what follows it: an index)
    cut.write_bytes(a.read_bytes()[:last[1] + 20])
    out = run_cli("diff", a, cut)
    assert out.returncode == 2
    assert "- #5  a → b  GET /n/{id}  200  (expected only)" in out.stdout.splitlines()
    [line] = out.stderr.splitlines()
    assert line.startswith(f"tapproxy: error: {cut}: ends inside record {last[0]}")
