"""`why --test` and `show --test` through the capture's closing index: one test's
records are read, not the capture (a damaged record of another test is never reached)."""

from __future__ import annotations

from tapproxy.capture import TestCase, open_capture
from tests.conftest import run_cli
from tests.spans.build import MS, T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"
OTHER = "tests/test_other.py::test_other"


def _capture(tmp_path):
    path = write_capture(tmp_path / "run.tap", [
        exchange("o1", "pytest", "gateway", 0, 5, test=OTHER),
        exchange("a", "pytest", "gateway", 10, 200, status=502, test=TEST),
        exchange("o2", "pytest", "gateway", 20, 25, test=OTHER),
        exchange("b", "gateway", "web", 15, 190, status=503, path="/orders/42", test=TEST),
        TestCase(OTHER, T0, T0 + 30 * MS, "passed"),
        TestCase(TEST, T0 + 5 * MS, T0 + 300 * MS, "failed"),
    ])
    data = bytearray(path.read_bytes())
    with open_capture(path) as reader:  # damage the other test's second exchange
        start = next(reader.position[1] for r in reader if getattr(r, "id", "") == "o2")
    data[start + 30] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_why_test_reads_the_test_s_records_through_the_index(tmp_path) -> None:
    path = _capture(tmp_path)
    r = run_cli("why", path, "--test", TEST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"{TEST}  failed"
    assert "root #2 gateway → web  GET /orders/42  503" in r.stdout


def test_show_test_numbers_rows_as_the_whole_table_does(tmp_path) -> None:
    path = _capture(tmp_path)
    r = run_cli("show", path, "--test", TEST)
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert rows == ["2", "4"]


def test_without_its_index_the_capture_is_read_and_the_damage_reported(tmp_path) -> None:
    path = _capture(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])  # the index's pointer cut off
    r = run_cli("why", path, "--test", TEST)
    assert r.returncode == 2
    assert "checksum" in r.stderr
