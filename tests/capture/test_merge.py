"""merge_captures: several captures (xdist workers, the plugin's own) become one."""

from __future__ import annotations

import pytest

from tapproxy.capture import (
    CaptureError,
    CaptureWriter,
    ServiceLog,
    TestCase,
    merge_captures,
    new_header,
    open_capture,
)
from tapproxy.capture.codec import header_to_wire
from tapproxy.capture.format import MAGIC
from tests.capture.test_format import frame

T0 = 1_767_225_600_000_000_000


def _write(path, records):
    w = CaptureWriter(path, new_header({"worker": path.stem}), index=False)  # as a killed one
    for r in records:
        w.write(r)
    w.close()


def test_every_record_of_every_input_in_one_capture(tmp_path):
    a = [TestCase("t::a", T0, T0 + 5, "passed"), ServiceLog("web", "stdout", "up", T0 + 1)]
    b = [TestCase("t::b", T0 + 2, T0 + 9, "failed")]
    _write(tmp_path / "gw0.tap", a)
    _write(tmp_path / "gw1.tap", b)
    n = merge_captures([tmp_path / "gw0.tap", tmp_path / "gw1.tap"], tmp_path / "run.tap",
                       {"pytest": True})
    assert n == 3
    with open_capture(tmp_path / "run.tap") as r:
        assert list(r) == a + b
        assert r.header.meta["merged_from"] == [str(tmp_path / "gw0.tap"),
                                                str(tmp_path / "gw1.tap")]
        assert r.header.meta["pytest"] is True


def test_a_worker_cut_short_gives_its_complete_records(tmp_path):
    _write(tmp_path / "gw0.tap", [TestCase("t::a", T0), TestCase("t::b", T0 + 1)])
    data = (tmp_path / "gw0.tap").read_bytes()
    (tmp_path / "gw0.tap").write_bytes(data[:-3])
    assert merge_captures([tmp_path / "gw0.tap"], tmp_path / "run.tap") == 1


def test_a_missing_input_is_named_and_the_output_left_alone(tmp_path):
    (tmp_path / "run.tap").write_bytes(b"previous")
    with pytest.raises(CaptureError, match=r"gw9\.tap: no such file"):
        merge_captures([tmp_path / "gw9.tap"], tmp_path / "run.tap")
    assert (tmp_path / "run.tap").read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["run.tap"]


def test_a_malformed_resource_sample_is_named_with_its_field(tmp_path):
    good = {"kind": "resource_sample", "service": "web", "timestamp": T0, "pid": 7,
            "cpu_percent": 1, "rss": 10, "threads": 2, "fds": None}
    bad = {**good, "rss": "10"}
    path = tmp_path / "bad.tap"
    path.write_bytes(MAGIC + frame(header_to_wire(new_header())) + frame(good) + frame(bad))
    with open_capture(path) as r, pytest.raises(CaptureError, match="rss is str '10', not int"):
        records = []
        for rec in r:
            records.append(rec)
    assert records[0].cpu_percent == 1.0 and records[0].fds is None
