"""`tapproxy why --contract` on captures written by the real writer: it names parties as
`tapproxy check` does, so both find the same mismatches."""

from __future__ import annotations

import dataclasses
import json

from tapproxy.capture import Party, TestCase
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture

CONTRACT = """\
tapproxy: 1
interactions:
  - callee: inventory
    request: {method: GET, path: "/stock/{sku}"}
    response:
      status: 200
      body: {qty: {type: integer}}
"""


def test_a_process_named_in_another_test_is_named_so_in_this_ones_check(tmp_path) -> None:
    # inventory answered test_a before it made a call of its own, in test_b: only then
    # was the process (PID 4242) known as inventory, as the whole capture tells.
    inventory = Party("python3", "process", "127.0.0.1:5002", 4242, "python3 inv.py")
    stock = dataclasses.replace(
        exchange("s", "tests", "python3", 0, 10, path="/stock/A-1", test="test_a",
                 response_body=b'{"qty": "3"}'), callee=inventory)
    own_call = dataclasses.replace(
        exchange("o", "inventory", "db", 100, 110, test="test_b"),
        caller=Party("inventory", "proxy-user", None, 4242, "python3 inv.py"))
    capture = write_capture(tmp_path / "run.tap", [
        stock, TestCase("test_a", T0, T0 + 20 * MS, "failed"),
        own_call, TestCase("test_b", T0 + 90 * MS, T0 + 120 * MS, "passed")])
    (tmp_path / "stock.yaml").write_text(CONTRACT)

    checked = run_cli("check", capture, "--contract", "stock.yaml", "--format", "json",
                      cwd=tmp_path)
    assert [m["exchange_id"] for m in json.loads(checked.stdout)["mismatches"]] == ["s"]
    told = run_cli("why", capture, "--test", "test_a", "--json", "--contract", "stock.yaml",
                   cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    story = json.loads(told.stdout)
    assert story["root"]["exchange_id"] == "s"
    assert [m["where"] for m in story["root"]["contract_mismatches"]] == ["/qty"]
