"""`tapproxy why` and `tapproxy stats` on a capture written by the real writer."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tapproxy.capture import ErrorInfo, Party, TestCase, Tunnel
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"


@pytest.fixture
def capture(tmp_path):
    def x(*a, **kw):
        return exchange(*a, test=TEST, **kw)

    return write_capture(tmp_path / "run.tap", [
        x("a", "pytest", "gateway", 0, 200, status=502, method="POST", path="/checkout"),
        x("b", "gateway", "web", 5, 190, status=500, path="/orders/42"),
        x("c", "web", "payments", 10, 150, status=None, method="POST", path="/pay",
          error=ErrorInfo("reset", "connection reset by peer"), request_body=b'{"amount":3}'),
        TestCase(TEST, T0, T0 + 300 * MS, "failed"),
        exchange("d", "pytest", "gateway", 400, 410, test="tests/test_ok.py::test_ok"),
        TestCase("tests/test_ok.py::test_ok", T0 + 390 * MS, T0 + 420 * MS, "passed"),
    ])


def test_why_prints_the_tree_the_root_and_the_consequences_in_80_columns(capture) -> None:
    r = run_cli("why", capture.name, "--test", TEST, cwd=capture.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"{TEST}  failed",
        "  1 pytest → gateway  POST /checkout                    502   200 ms  propagated",
        "  2   gateway → web  GET /orders/42                     500   185 ms  propagated",
        "  3     web → payments  POST /pay                     reset   140 ms  ◀ root",
        "root #3 web → payments  POST /pay  reset",
        "  why: transport error reset (connection reset by peer); it made no calls",
        "  request:  POST http://payments/pay",
        '            {"amount":3}',
        "  error:    reset: connection reset by peer",
        "  in full:  tapproxy show run.tap --exchange c",
        "consequences:",
        "  #1 pytest → gateway 502: propagated from #3",
        "  #2 gateway → web 500: propagated from #3",
        "  propagated: gateway 502, web 500",
    ]


def test_why_without_a_test_tells_only_failing_tests(capture) -> None:
    r = run_cli("why", capture, "--json")
    assert r.returncode == 0, r.stderr
    (story,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert story["test"] == TEST and story["root"]["exchange_id"] == "c"


def test_stats_by_edge_as_json(capture) -> None:
    r = run_cli("stats", capture, "--json", "--by", "edge")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"edge", "overall"}  # "tunnels" only when there were any
    edges = {tuple(e["key"]): e for e in out["edge"]}
    assert edges[("pytest", "gateway")]["count"] == 2
    assert edges[("web", "payments")]["errors"] == 1
    assert edges[("web", "payments")]["bytes_in"] == 12
    assert out["overall"]["count"] == 4
    text = run_cli("stats", capture).stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "gateway POST /checkout" in text and "web GET /orders/{id}" in text


@pytest.mark.parametrize(("args", "message"), [
    (("why", "nope.tap", "--test", "t"), "nope.tap: no such file"),
    (("why", "{cap}", "--test", "nosuch"), "no test 'nosuch'"),
    (("why", "{cap}", "--budget", "fast"), "bad --budget duration 'fast'"),
    (("why", "{cap}", "--budget", "/x=1parsec"), "bad --budget duration '1parsec'"),
    (("why", "{cap}", "--baseline", "missing.tap"), "missing.tap: no such file"),
    (("stats", "{cap}", "--by", "color"), "bad --by 'color'"),
    (("stats", "notes.txt"), "notes.txt"),
])
def test_bad_input_is_one_line_and_exit_2(capture, tmp_path, args, message) -> None:
    (tmp_path / "notes.txt").write_text("not a capture\n")
    r = run_cli(*(a.format(cap=capture) for a in args), cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr, r.stderr


def test_recorded_control_characters_are_escaped(tmp_path) -> None:
    evil = "/a\x1b]0;owned\x07"
    cap = write_capture(tmp_path / "evil.tap", [
        exchange("e", "pytest", "svc\x1b[2J", 0, 10, status=500, path=evil, test="t\x1b"),
        TestCase("t\x1b", T0, T0 + 20 * MS, "failed"),
    ])
    for args in (("why", cap), ("stats", cap), ("why", cap, "--json"), ("stats", cap, "--json")):
        r = run_cli(*args)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "svc\\x1b[2J" in run_cli("why", cap).stdout


def test_why_with_a_baseline_names_the_first_divergence(tmp_path) -> None:
    def run(path, stock: bytes, top: int):
        return write_capture(path, [
            exchange("a", "pytest", "gateway", 0, 100, status=top, test="t"),
            exchange("b", "gateway", "stock", 10, 50, response_body=stock, test="t",
                     path="/items/7"),
            TestCase("t", T0, T0 + 200 * MS, "failed" if top >= 500 else "passed"),
        ])

    good = run(tmp_path / "good.tap", b'{"n": 3, "at": "2026-01-01T00:00:00Z"}', 200)
    bad = run(tmp_path / "bad.tap", b'{"n": "3", "at": "2026-02-02T10:00:00Z"}', 500)
    r = run_cli("why", bad, "--test", "t", "--baseline", good)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == \
        'baseline: first differs at #1 pytest → gateway GET /: status 500, baseline 200'
    story = json.loads(run_cli("why", bad, "--test", "t", "--baseline", good,
                               "--json").stdout)
    assert story["divergence"]["exchange_id"] == "a"


def test_why_tells_unnamed_loopback_services_apart_by_port_and_hints_at_a_name(tmp_path):
    # Two services started outside tapproxy, both seen only at 127.0.0.1: the story must
    # not merge them into one "127.0.0.1", and the timing points at who one of them is.
    def at(x, port):
        return dataclasses.replace(x, callee=Party("127.0.0.1", "host", f"127.0.0.1:{port}"))

    path = write_capture(tmp_path / "run.tap", [
        at(exchange("a", "pytest", "-", 0, 200, status=500, path="/checkout", test=TEST),
           5001),
        exchange("b", "orders", "payments", 10, 150, status=503, path="/pay", test=TEST),
        at(exchange("c", "pytest", "-", 300, 310, path="/health", test=TEST), 5002),
        TestCase(TEST, T0, T0 + 400 * MS, "failed"),
    ])
    r = run_cli("why", path, "--test", TEST)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert any("pytest → 127.0.0.1:5001" in line for line in out), out
    assert any("pytest → 127.0.0.1:5002" in line for line in out), out
    assert out[-2:] == [
        "127.0.0.1:5001 may be orders: orders's calls happen only inside requests to it",
        "  if so, name it: --service orders=127.0.0.1:5001"]
    j = run_cli("why", path, "--json")
    (story,) = [json.loads(line) for line in j.stdout.splitlines()]
    assert story["hints"][0].startswith("127.0.0.1:5001 may be orders")


def test_why_marks_a_caller_known_only_by_address(tmp_path) -> None:
    # README and `show` print an address-only caller as ?127.0.0.1: `why` must too,
    # also in what the story says of it, or it reads like a service named 127.0.0.1.
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "127.0.0.1", "shop", 0, 200, status=502, test=TEST,
                 caller_source="peer", caller_address="127.0.0.1:40000"),
        exchange("b", "shop", "payments", 10, 150, status=500, test=TEST),
        TestCase(TEST, T0, T0 + 400 * MS, "failed"),
    ])
    out = run_cli("why", path, "--test", TEST).stdout
    assert "?127.0.0.1 → shop" in out, out
    assert " 127.0.0.1 →" not in out, out


def test_stats_shows_no_rate_for_one_call_and_fits_long_routes_on_one_line(tmp_path) -> None:
    long_path = "/warehouses/" + "north-east-" * 4 + "/shelves/7/reservations"
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "tests", "shop", 0, 3, path="/orders", method="POST", test=TEST),
        exchange("b", "shop", "inventory", 0, 2, path=long_path, test=TEST),
        exchange("c", "shop", "inventory", 1, 2, path=long_path, test=TEST),
        *[exchange(f"s{i}", "tests", "slow", i * 600, i * 600 + 5, path="/s", test=TEST)
          for i in range(3)],
    ])
    r = run_cli("stats", path, "--by", "route")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, r.stdout
    (orders,) = [line for line in lines if line.startswith("shop POST /orders")]
    assert orders.split()[3:6] == ["1", "0.0", "0"] and orders.split()[6] == "-", orders
    # Two calls within 2 ms: no honest rate either; three over 1.2 s have one.
    (at,) = [i for i, line in enumerate(lines) if line.startswith("inventory GET /wareh")]
    assert "…" in lines[at] and lines[at].endswith("/shelves/{id}/reservations")  # both ends
    assert lines[at + 1].split()[:4] == ["2", "0.0", "0", "-"], lines[at + 1]
    (slow,) = [line for line in lines if line.startswith("slow GET /s")]
    assert slow.split()[6] == "2.5", slow  # 3 calls over 1.205 s


def test_stats_of_a_capture_cut_short_prints_the_figures_then_the_problem(tmp_path) -> None:
    whole = write_capture(tmp_path / "whole.tap", [
        exchange("a", "tests", "shop", 0, 10, test=TEST),
        exchange("b", "tests", "shop", 20, 30, test=TEST),
        exchange("c", "tests", "shop", 40, 50, test=TEST, response_body=b"x" * 500),
    ])
    cut = tmp_path / "cut.tap"
    cut.write_bytes(whole.read_bytes()[:-200])  # inside the last exchange
    r = run_cli("stats", cut, "--by", "edge")
    assert r.returncode == 2
    assert [line.split()[:4] for line in r.stdout.splitlines()
            if line.startswith("tests → shop")] == [["tests", "→", "shop", "2"]], r.stdout
    assert len(r.stderr.splitlines()) == 1 and "cut.tap" in r.stderr, r.stderr
    j = run_cli("stats", cut, "--json")
    assert j.returncode == 2 and json.loads(j.stdout)["overall"]["count"] == 2


def test_stats_counts_tunnels(tmp_path) -> None:
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "tests", "shop", 0, 10, test=TEST),
        Tunnel("t1", Party("mailer", "proxy-auth"), Party("127.0.0.1", "host"),
               "server_first", T0, T0 + 5 * MS, bytes_from_client=6, bytes_from_server=26),
        Tunnel("t2", Party("mailer", "proxy-auth"), Party("127.0.0.1", "host"),
               "server_first", T0, T0 + 5 * MS, bytes_from_client=4,
               error=ErrorInfo("refused", "connection refused")),
    ])
    r = run_cli("stats", path, "--by", "edge")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("mailer → 127.0.0.1")]
    assert row.split()[3:] == ["2", "1", "10B", "26B"], row
    assert max(len(line) for line in lines) <= 80
    j = json.loads(run_cli("stats", path, "--json").stdout)
    assert j["tunnels"] == [{"edge": "mailer → 127.0.0.1", "count": 2, "failed": 1,
                             "bytes_up": 10, "bytes_down": 26}]


def test_why_names_the_root_so_that_show_finds_it(tmp_path) -> None:
    # `#2` counts the test's calls; in the capture the root is row 4: `why` must give
    # a reference `show --exchange` resolves to the root, however the capture is numbered.
    path = write_capture(tmp_path / "run.tap", [
        exchange("0b8e2c55-1d7a-4b2e-9a51-7c1f0e9d3a21", "tests", "shop", 0, 5,
                 test="tests/test_a.py::test_first"),
        exchange("5f0c3a8e-2b1d-4c6f-8e7a-9d2b1c0f4e63", "tests", "shop", 10, 15,
                 test="tests/test_a.py::test_first"),
        exchange("1c9d7e2a-3f4b-4a5c-8d6e-0f1a2b3c4d5e", "tests", "shop", 20, 90, status=502,
                 test=TEST),
        exchange("9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b", "shop", "payments", 30, 80,
                 status=500, method="POST", path="/charges", test=TEST),
        TestCase(TEST, T0 + 20 * MS, T0 + 100 * MS, "failed"),
    ])
    out = run_cli("why", path.name, "--test", TEST, cwd=tmp_path).stdout.splitlines()
    (line,) = [line for line in out if line.startswith("  in full:  ")]
    assert line == "  in full:  tapproxy show run.tap --exchange 9e8d7c6b-5a4f"
    shown = run_cli("show", path, "--exchange", line.split()[-1]).stdout
    assert shown.startswith("exchange 4  shop (proxy-auth) → payments"), shown


def test_why_names_a_failed_test_with_nothing_to_blame_in_one_line(tmp_path) -> None:
    handled, plain = "tests/test_a.py::test_retried", "tests/test_a.py::test_asserts"
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "tests", "gateway", 0, 10, status=503, path="/health", test=handled),
        exchange("b", "tests", "gateway", 20, 30, path="/health", test=handled),
        TestCase(handled, T0, T0 + 40 * MS, "failed"),
        exchange("c", "tests", "gateway", 50, 60, test=plain),
        TestCase(plain, T0 + 50 * MS, T0 + 70 * MS, "failed"),
        exchange("d", "tests", "gateway", 80, 90, status=503, path="/health", test="t_ok"),
        exchange("e", "tests", "gateway", 95, 99, path="/health", test="t_ok"),
        TestCase("t_ok", T0 + 80 * MS, T0 + 100 * MS, "passed"),
    ])
    r = run_cli("why", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"{handled}  failed: no call to blame (1 failed: 1 handled)",
        f"{plain}  failed: no call failed: its own checks failed",
    ]
    stories = [json.loads(line) for line in run_cli("why", path, "--json").stdout.splitlines()]
    assert [(s["test"], s["root"]) for s in stories] == [(handled, None), (plain, None)]


def test_show_finds_a_call_by_the_number_why_gives_it_within_its_test(tmp_path) -> None:
    # Written in the order they completed; `why` numbers a test's calls by start.
    path = write_capture(tmp_path / "run.tap", [
        exchange("other", "tests", "shop", 0, 5, test="tests/test_a.py::test_first"),
        exchange("inner", "shop", "payments", 30, 80, status=500, test=TEST),
        exchange("outer", "tests", "shop", 20, 90, status=502, test=TEST),
        TestCase(TEST, T0 + 20 * MS, T0 + 100 * MS, "failed"),
    ])
    why = run_cli("why", path, "--test", TEST).stdout
    assert "root #2 shop → payments" in why
    shown = run_cli("show", path, "--exchange", f"{TEST}#2")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("exchange 2  shop (proxy-auth) → payments"), shown.stdout
    assert run_cli("show", path, "--exchange", f"{TEST}#1").stdout.startswith("exchange 3 ")
    missing = run_cli("show", path, "--exchange", f"{TEST}#3")
    assert missing.returncode == 2 and f"no exchange '{TEST}#3'" in missing.stderr


def test_why_of_a_capture_with_no_test_tells_the_story_of_all_its_calls(tmp_path) -> None:
    # `tapproxy record` without a test harness: the cascade is still explained.
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "curl", "web", 0, 100, status=500, path="/order/1"),
        exchange("b", "web", "inventory", 5, 90, status=503, path="/items/1"),
        exchange("c", "curl", "web", 200, 210, path="/health"),
    ])
    r = run_cli("why", path.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "(no test)  no outcome"
    assert "root #2 web → inventory  GET /items/1  503" in lines
    empty = write_capture(tmp_path / "empty.tap", [])
    r = run_cli("why", empty.name, cwd=tmp_path)
    assert r.stdout == "" and r.stderr.strip() == "empty.tap: no exchange to explain"


def test_stats_of_a_capture_with_no_test_says_so_instead_of_an_empty_table(tmp_path) -> None:
    capture = write_capture(tmp_path / "run.tap", [
        exchange("a", "curl", "web", 0, 20, test=None),
    ])
    r = run_cli("stats", capture)
    assert r.returncode == 0, r.stderr
    assert "by test: none (no exchange was recorded inside a test)" in r.stdout.splitlines()
    assert not any(line.startswith("by test ") for line in r.stdout.splitlines())
