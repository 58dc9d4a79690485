"""Choosing rows: tunnels are numbered apart from exchanges and filtered the same way."""

from __future__ import annotations

from tapproxy.capture import ErrorInfo, Exchange, Party, Request, TestCase, Timing, Tunnel
from tapproxy.capture.select import numbered_rows, select

T0 = 1_767_225_600_000_000_000


def exchange(id_: str, caller: str, test: str | None = None) -> Exchange:
    return Exchange(id_, Party(caller, "proxy-auth"), Party("api", "host"),
                    Request("GET", "http", "api", 80, "/", "HTTP/1.1"), Timing(T0), test=test)


def tunnel(id_: str, reason: str, error: ErrorInfo | None = None,
           test: str | None = None) -> Tunnel:
    return Tunnel(id_, Party("browser", "listener"), Party("db", "host"), reason, T0,
                  error=error, test=test)


RESET = ErrorInfo("reset", "connection reset by peer")
RECORDS = [
    exchange("x1", "shop"),
    tunnel("t-ok", "server_first", test="test_a"),
    TestCase("test_a", T0),
    exchange("x2", "web", test="test_a"),
    tunnel("t-reset", "not_http", RESET),
    tunnel("t-ignored", "ignored", ErrorInfo("dns", "no such host")),
]


def labels(rows) -> list:
    return [n for n, _ in rows]


def test_tunnels_are_numbered_apart_so_exchange_numbers_stay():
    assert labels(numbered_rows(RECORDS)) == [1, "t1", 2, "t2", "t3"]


def test_errors_keep_failed_tunnels_but_not_an_ignored_hosts_failure():
    assert labels(select(numbered_rows(RECORDS), errors=True)) == ["t2"]


def test_test_and_service_filters_apply_to_tunnels():
    assert labels(select(numbered_rows(RECORDS), test="test_*")) == ["t1", 2]
    assert labels(select(numbered_rows(RECORDS), service="browser")) == ["t1", "t2", "t3"]
    assert labels(select(numbered_rows(RECORDS), service="db")) == ["t1", "t2", "t3"]


def test_a_test_index_reads_any_test_again(tmp_path) -> None:
    from tapproxy.capture import CaptureWriter, new_header, open_capture
    from tapproxy.capture.select import TestIndex

    path = tmp_path / "run.tap"
    w = CaptureWriter(path, new_header(), None)
    records = [exchange(f"x{i}", "shop", test=f"test_{i % 3}") for i in range(9)]
    for r in [*records, exchange("free", "shop")]:
        w.write(r)
    w.close()
    with open_capture(path) as reader:
        index = TestIndex(reader, only="test_[01]")
        assert [x.id for x in index.exchanges("test_1")] == ["x1", "x4", "x7"]
        assert [x.id for x in index.exchanges("test_0")] == ["x0", "x3", "x6"]
        assert index.exchanges("test_2") == [] and index.exchanges(None) == []
        assert index.exchanges("test_1") == records[1::3]
    with open_capture(path) as reader:
        assert [x.id for x in TestIndex(reader).exchanges(None)] == ["free"]
