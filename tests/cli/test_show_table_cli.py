"""`tapproxy show`'s table: 80 columns, row numbers whole, tests told apart."""

from __future__ import annotations

import dataclasses
import re

from tapproxy.capture import ErrorInfo, Party, Tunnel
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture


def _rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"^t?\d", line)]


def test_row_numbers_of_ten_thousand_and_more_are_printed_whole(tmp_path) -> None:
    # `--exchange N` must find what the table shows: a number cut to `100…` names nothing.
    records = []
    for i in range(10_002):
        records.append(exchange(f"x{i}", "tests", "shop", i, i + 1, test="t"))
        if i >= 9_998:
            records.append(Tunnel(f"u{i}", Party("mailer", "proxy-auth"),
                                  Party("127.0.0.1", "host"), "server_first", T0 + i * MS))
    for i in range(9_998):
        records.append(Tunnel(f"v{i}", Party("mailer", "proxy-auth"),
                              Party("127.0.0.1", "host"), "server_first", T0))
    path = write_capture(tmp_path / "run.tap", records)
    out = run_cli("show", path).stdout
    rows = _rows(out)
    numbers = [row.split()[0] for row in rows]
    assert {"9999", "10000", "10001", "10002", "t9999", "t10000", "t10001", "t10002"} \
        <= set(numbers), numbers[-8:]
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "exchange 10002 " in run_cli("show", path, "--exchange", "10002").stdout


def test_the_test_column_shows_what_tells_tests_apart_within_80_columns(tmp_path) -> None:
    long_service = "inventory-reservations"
    path = write_capture(tmp_path / "run.tap", [
        exchange("a", "tests", "shop", 0, 10, test="tests/test_shop.py::test_place_order",
                 path="/orders"),
        exchange("b", "tests", "shop", 20, 30, test="tests/test_shop.py::test_declined_card",
                 path="/orders/" + "9" * 40),
        exchange("c", "shop-frontend", long_service, 40, 50, status=None,
                 test="tests/test_shop.py::test_declined_card",
                 error=ErrorInfo("client_closed", "Client disconnected.")),
        dataclasses.replace(exchange("d", "x", "shop", 60, 70),
                            caller=Party("127.0.0.1", "peer", "127.0.0.1:4000")),
    ])
    out = run_cli("show", path).stdout
    assert max(len(line) for line in out.splitlines()) <= 80, out
    rows = _rows(out)
    assert "tests/test_shop.py" not in out
    assert re.match(r"^1\s+test_p\S*order\s+tests → shop\s+GET\s+/orders\s+200\s", rows[0])
    assert re.match(r"^2\s+test_d\S*card\s", rows[1]), rows[1]
    assert "/order…99999 " in rows[1]  # both ends of a long path
    assert "GAVE UP" in rows[2]  # client_closed: the caller gave up, as `why` says
    assert "?127.0.0.1 → shop" in rows[3]
