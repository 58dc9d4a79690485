"""The closing index: one test's records found without reading the capture, and the
same answer from a capture without one, with one cut off, or with one that lies.

Captures are written by the real CaptureWriter; damage is done to the bytes, as a
killed recorder or another tool would leave them.
"""

from __future__ import annotations

import struct
import zlib

import msgpack
import pytest

from tapproxy.capture import (
    CaptureError,
    CaptureWriter,
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    TestCase,
    Timing,
    Tunnel,
    new_header,
    open_capture,
)
from tapproxy.capture.format import MAGIC
from tapproxy.capture.index import END_SIZE, end_frame, records_of_tests

T0 = 1_767_225_600_000_000_000


def _exchange(test: str | None, n: int) -> Exchange:
    return Exchange(
        id=f"x{n}", caller=Party("tests", "proxy-auth"), callee=Party("api", "service-map"),
        request=Request("GET", "http", "api", 80, f"/items/{n}", "HTTP/1.1",
                        Headers((("accept", "*/*"),))),
        response=Response(500 if n % 7 == 3 else 200, "OK", "HTTP/1.1", Headers(), b"{}"),
        timing=Timing(T0 + n * 1000, response_end=T0 + n * 1000 + 500), test=test)


def _tunnel(test: str, n: int) -> Tunnel:
    return Tunnel(f"t{n}", Party("tests", "peer"), Party("db", "host", "127.0.0.1:5432"),
                  "server_first", T0 + n * 1000, test=test)


def _records() -> list:
    """Three tests whose records interleave, a tunnel, and exchanges of no test."""
    out: list = []
    for n in range(30):
        test = f"tests/test_a.py::test_{'abc'[n % 3]}"
        out.append(_exchange(test, n))
        if n == 10:
            out.append(_tunnel("tests/test_a.py::test_b", n))
        if n % 5 == 4:
            out.append(_exchange(None, 100 + n))
    for name, outcome in (("a", "passed"), ("b", "failed"), ("c", "passed")):
        out.append(TestCase(f"tests/test_a.py::test_{name}", T0, T0 + 10**9, outcome))
    return out


def _write(path, records, index: bool = True) -> bytes:
    w = CaptureWriter(path, new_header(), index=index)
    for r in records:
        w.write(r)
    w.close()
    return path.read_bytes()


def _scan_rows(path, test: str) -> list:
    out, exchanges, tunnels = [], 0, 0
    with open_capture(path) as reader:
        for r in reader:
            if isinstance(r, Exchange):
                exchanges += 1
                row = exchanges
            elif isinstance(r, Tunnel):
                tunnels += 1
                row = f"t{tunnels}"
            elif isinstance(r, TestCase):
                row = None
            else:
                continue
            if getattr(r, "test", None) == test or getattr(r, "name", None) == test:
                out.append((row, r))
    return out


def _by_index(path, test: str) -> list:
    with open_capture(path) as reader:
        return list(records_of_tests(reader, lambda name: name == test))


def _frames(data: bytes) -> list[tuple[int, int]]:
    out, at = [], len(MAGIC)
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        out.append((at, at + 8 + length))
        at += 8 + length
    return out


TEST_B = "tests/test_a.py::test_b"


def test_a_closed_capture_ends_with_the_index_and_its_pointer(tmp_path):
    data = _write(tmp_path / "c.tap", _records())
    *_, (index_at, index_end), (end_at, end) = _frames(data)
    assert end == len(data) and end - end_at == END_SIZE
    tail = msgpack.unpackb(data[end_at + 8:])
    assert tail == {"kind": "index_end", "offset": index_at}
    index = msgpack.unpackb(data[index_at + 8:index_end])
    assert index["kind"] == "index"
    assert sorted(index["tests"]) == [f"tests/test_a.py::test_{c}" for c in "abc"]
    with open_capture(tmp_path / "c.tap") as reader:
        assert reader.header.minor == 7
        assert list(reader) == _records()  # neither frame is a record
        assert not reader.truncated


def test_one_test_s_records_come_from_the_index_without_reading_the_others(tmp_path):
    path = tmp_path / "c.tap"
    data = bytearray(_write(path, _records()))
    expected = _scan_rows(path, TEST_B)
    assert [row for row, _ in expected][:2] == [2, 5] and "t1" in [r for r, _ in expected]
    # Damage a record of another test: a reader that read it would stop with an error.
    with open_capture(path) as reader:
        for r in reader:
            if isinstance(r, Exchange) and r.test != TEST_B:
                _, start = reader.position
                break
    data[start + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _by_index(path, TEST_B) == expected
    with open_capture(path) as reader, pytest.raises(CaptureError, match="checksum"):
        list(reader)


def test_without_an_index_the_capture_is_read_whole_with_the_same_answer(tmp_path):
    with_index, without = tmp_path / "with.tap", tmp_path / "without.tap"
    _write(with_index, _records())
    _write(without, _records(), index=False)
    assert _by_index(without, TEST_B) == _scan_rows(without, TEST_B) == \
        _by_index(with_index, TEST_B)


def test_an_older_minor_capture_is_read_whole(tmp_path):
    path = tmp_path / "old.tap"
    header = {"kind": "header", "format": "tapproxy-capture", "version": 1, "minor": 6,
              "created": T0, "tool": "tapproxy 0.0.9", "meta": {}}
    from tapproxy.capture.codec import record_to_wire

    frames = [msgpack.packb(m, use_bin_type=True)
              for m in [header, *(record_to_wire(r) for r in _records())]]
    path.write_bytes(MAGIC + b"".join(struct.pack(">II", len(p), zlib.crc32(p)) + p
                                      for p in frames))
    assert _by_index(path, TEST_B) == _scan_rows(path, TEST_B)
    assert len(_by_index(path, TEST_B)) == 12


@pytest.mark.parametrize("cut", [1, END_SIZE - 1, END_SIZE, END_SIZE + 5])
def test_a_capture_cut_off_in_its_index_is_read_whole_and_says_where_it_ends(tmp_path, cut):
    path = tmp_path / "cut.tap"
    data = _write(path, _records())
    path.write_bytes(data[:-cut])
    expected = _scan_rows(path, TEST_B)
    assert len(expected) == 12  # every record is there: only the index was cut
    with open_capture(path) as reader:
        assert reader.index() is None
        assert list(records_of_tests(reader, lambda name: name == TEST_B)) == expected
        assert reader.truncated is (cut != END_SIZE)


def test_records_appended_after_the_index_are_found(tmp_path):
    """A tool that appended frames (a concatenation) leaves the pointer mid-file."""
    path = tmp_path / "grown.tap"
    data = _write(path, _records())
    from tapproxy.capture.codec import record_to_wire

    p = msgpack.packb(record_to_wire(_exchange(TEST_B, 99)), use_bin_type=True)
    path.write_bytes(data + struct.pack(">II", len(p), zlib.crc32(p)) + p)
    got = _by_index(path, TEST_B)
    assert got == _scan_rows(path, TEST_B)
    assert got[-1][1].id == "x99"


def _with_index(data: bytes, tests: dict[str, bytes]) -> bytes:
    """`data` (a capture with an index) with its index replaced by `tests`."""
    *_, (index_at, _), _ = _frames(data)
    p = msgpack.packb({"kind": "index", "records": 0, "tests": tests}, use_bin_type=True)
    return data[:index_at] + struct.pack(">II", len(p), zlib.crc32(p)) + p + \
        end_frame(index_at)


def _entries(*entries: tuple[int, int, int]) -> bytes:
    return (b"".join(struct.pack(">Q", o) for o, _, _ in entries)
            + b"".join(struct.pack(">I", n) for _, n, _ in entries)
            + b"".join(struct.pack(">I", r) for _, _, r in entries))


def test_an_index_pointing_at_another_test_s_records_is_not_believed(tmp_path):
    path = tmp_path / "stale.tap"
    data = _write(path, _records())
    with open_capture(path) as reader:
        places = [(reader.position, r) for r in reader]
    (number, offset), _ = next((p, r) for p, r in places
                               if isinstance(r, Exchange) and r.test == "tests/test_a.py::test_a")
    (n_b, o_b), first_b = next((p, r) for p, r in places
                               if isinstance(r, Exchange) and r.test == TEST_B)
    # Test b's first record is right, its second is test a's.
    path.write_bytes(_with_index(data, {TEST_B: _entries((o_b, n_b, 2), (offset, number, 1))}))
    got = _by_index(path, TEST_B)
    assert sorted(got, key=lambda rr: str(rr[1])) == \
        sorted(_scan_rows(path, TEST_B), key=lambda rr: str(rr[1]))
    assert got[0] == (2, first_b)


def test_an_index_pointing_inside_a_record_is_not_believed(tmp_path):
    path = tmp_path / "inside.tap"
    data = _write(path, _records())
    with open_capture(path) as reader:
        [(number, offset)] = [reader.position for r in reader
                              if isinstance(r, Exchange) and r.test == TEST_B][:1]
    path.write_bytes(_with_index(data, {TEST_B: _entries((offset + 3, number, 2))}))
    assert _by_index(path, TEST_B) == _scan_rows(path, TEST_B)


def test_an_index_whose_entries_do_not_divide_is_ignored(tmp_path):
    path = tmp_path / "odd.tap"
    data = _write(path, _records())
    path.write_bytes(_with_index(data, {TEST_B: b"\x00" * 17}))
    with open_capture(path) as reader:
        assert reader.index() is None
    assert _by_index(path, TEST_B) == _scan_rows(path, TEST_B)


def test_a_glob_gets_every_matching_test_in_file_order(tmp_path):
    path = tmp_path / "glob.tap"
    data = bytearray(_write(path, _records()))
    with open_capture(path) as reader:  # damaged, test b's first record: never read
        start = next(reader.position[1] for r in reader if getattr(r, "test", "") == TEST_B)
    data[start + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_capture(path) as reader:
        got = list(records_of_tests(reader, lambda name: name.endswith(("_a", "_c"))))
    rows = [row for row, r in got if not isinstance(r, TestCase)]
    assert rows == sorted(rows)
    assert len(got) == 22  # 10 + 10 exchanges and two test records


def test_a_test_not_in_the_index_gives_nothing_and_reads_nothing(tmp_path):
    path = tmp_path / "none.tap"
    _write(path, _records())
    with open_capture(path) as reader:
        assert list(records_of_tests(reader, lambda name: name == "nope")) == []
        assert reader.position == (0, 0)  # nothing was read


def test_a_growing_capture_s_test_index_reads_only_what_was_appended(tmp_path):
    """The pytest plugin's `tapproxy.exchanges()`: each call reads the records written
    since the last; a record read before is not read again (damage to it goes unseen)."""
    from tapproxy.capture.select import TestIndex

    path = tmp_path / "live.tap"
    w = CaptureWriter(path, new_header())
    first = [_exchange("t::one", n) for n in range(3)]
    for x in first:
        w.write(x)
    w.flush()
    with open_capture(path) as reader:
        seen = TestIndex(reader)
        assert seen.exchanges("t::one") == first
        w.write(_exchange("t::two", 10))
        w.flush()
        data = bytearray(path.read_bytes())
        data[len(MAGIC) + 200] ^= 0xFF  # inside the first record: already noted
        path.write_bytes(bytes(data))
        w.write(_exchange("t::two", 11))
        w.flush()
        seen.update()
        assert [x.id for x in seen.exchanges("t::two")] == ["x10", "x11"]
    w.close()


def test_past_its_limit_the_writer_keeps_nothing_and_writes_no_index(tmp_path):
    from tapproxy.capture.index import IndexBuilder

    path = tmp_path / "long.tap"
    w = CaptureWriter(path, new_header())
    w._index = IndexBuilder(limit=10)  # the limit is 8 Mi records; 10 here
    for r in _records():
        w.write(r)
    w.close()
    with open_capture(path) as reader:
        assert reader.index() is None
        assert list(reader) == _records()
        assert not reader.truncated
    assert _by_index(path, TEST_B) == _scan_rows(path, TEST_B)


def test_the_pointer_frame_is_the_40_bytes_the_format_document_gives():
    payload = (b"\x82\xa4kind\xa9index_end\xa6offset\xcf" + (1234).to_bytes(8, "big"))
    assert len(payload) == 32 and END_SIZE == 40
    assert end_frame(1234) == struct.pack(">II", 32, zlib.crc32(payload)) + payload
