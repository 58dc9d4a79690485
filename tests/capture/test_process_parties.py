"""The naming pre-pass: the parties of exchanges where a party was named by its process."""

from __future__ import annotations

from pathlib import Path

from tapproxy.capture import (
    CaptureWriter,
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    TestCase,
    Timing,
    new_header,
    open_capture,
)

T0 = 1_767_225_600_000_000_000


def _exchange(n: int, caller: Party, callee: Party, body: bytes = b"") -> Exchange:
    return Exchange(f"x{n}", caller, callee,
                    Request("POST", "http", "127.0.0.1", 8000, f"/p/{n}", "HTTP/1.1",
                            Headers((("content-type", "application/json"),)), body),
                    Timing(T0 + n, T0 + n + 1, T0 + n + 2, T0 + n + 3),
                    Response(200, "OK", "HTTP/1.1", Headers(), body))


def test_only_exchanges_with_a_pid_are_given_whatever_their_bodies_say(
        tmp_path: Path) -> None:
    plain = Party("gw", "proxy-auth")
    by_pid = Party("worker", "process", "127.0.0.1:40000", 4242, "python worker.py")
    given = Party("orders", "proxy-user", None, 7, "orders --port 8000")
    path = tmp_path / "c.tap"
    w = CaptureWriter(path, new_header())
    w.write(_exchange(1, plain, plain, b'{"pid": 12, "rapid": true}'))  # "pid" in bodies
    w.write(_exchange(2, by_pid, plain))
    w.write(TestCase("t::pid", T0, T0 + 9, "passed"))  # a test named "pid": no parties
    w.write(_exchange(3, plain, given, b"pid"))
    w.write(_exchange(4, plain, plain))
    w.close()
    with open_capture(path) as reader:
        assert list(reader.process_parties()) == [(by_pid, plain), (plain, given)]
