"""Where each test's records are: written at the end of a capture, read from its tail.

A capture closed cleanly ends with two frames (format minor 7): an `index` record
mapping each test to the byte offsets of its records (exchanges, tunnels, its test
record), then `index_end`, a frame of fixed size holding the index's offset. A reader
finds them from the file's last 40 bytes, so one test's records are read without
reading the capture: `why --test` on a gigabyte answers at once. Older readers skip
both kinds. A capture without them (cut short, still being written, older) or whose
index does not match its records (a frame where the index says, but of another test)
is read whole instead, with the same result.
"""

from __future__ import annotations

import heapq
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator

import msgspec

from tapproxy.capture.model import Exchange, Record, TestCase, Tunnel
from tapproxy.errors import CaptureError

__all__ = ["END_SIZE", "IndexBuilder", "TestRecords", "read_index", "records_of_tests"]

# index_end: {"kind": "index_end", "offset": uint64} with the offset always 8 bytes wide.
_END_PREFIX = b"\x82\xa4kind\xa9index_end\xa6offset\xcf"
_END_PAYLOAD = len(_END_PREFIX) + 8
END_SIZE = 8 + _END_PAYLOAD  # the whole frame: length, CRC, payload
_ENTRY = 16  # per record: offset u64, record number u32, row number u32 (big-endian)
_MAX_U32 = 2**32 - 1


def _belongs_to(record: Record) -> str | None:
    if isinstance(record, TestCase):
        return record.name
    if isinstance(record, Exchange | Tunnel):
        return record.test
    return None


def _be(a: array) -> bytes:
    if sys.byteorder == "little":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


#: Records of tests an index notes at most (16 bytes each: 128 MiB); a longer recording
#: ends without one (readers read it whole) rather than let the writer's memory grow.
MAX_ENTRIES = 8 << 20


class IndexBuilder:
    """The writer's side: each record's place, noted as it is written (16 bytes a
    record of a test), turned into the two closing frames' payloads."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self._tests: dict[str, tuple[array, array, array]] = {}
        self._exchanges = self._tunnels = 0
        self._entries, self._limit = 0, limit
        self.usable = True  # false past `limit` entries or 2**32 records

    def add(self, record: Record, number: int, offset: int) -> None:
        """Note `record`, the `number`-th of the capture, written at byte `offset`."""
        row = 0
        if isinstance(record, Exchange):
            self._exchanges += 1
            row = self._exchanges
        elif isinstance(record, Tunnel):
            self._tunnels += 1
            row = self._tunnels
        test = _belongs_to(record)
        if test is None:
            return
        if not self.usable:
            return
        self._entries += 1
        if number > _MAX_U32 or row > _MAX_U32 or self._entries > self._limit:
            self.usable = False
            self._tests.clear()  # no index: nothing more to keep
            return
        at = self._tests.get(test)
        if at is None:
            at = self._tests[test] = (array("Q"), array("I"), array("I"))
        at[0].append(offset)
        at[1].append(number)
        at[2].append(row)

    def wire(self, records: int) -> dict:
        """The `index` record's map; `records`: how many records precede it."""
        return {"kind": "index", "records": records,
                "tests": {name: _be(o) + _be(n) + _be(r)
                          for name, (o, n, r) in self._tests.items()}}


def end_frame(offset: int) -> bytes:
    """The `index_end` frame pointing at the index frame at `offset`."""
    payload = _END_PREFIX + offset.to_bytes(8, "big")
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


class _Index(msgspec.Struct):
    tests: dict[str, bytes]


_decode_index = msgspec.msgpack.Decoder(_Index).decode


def read_index(file, first: int, size: int) -> dict[str, bytes] | None:
    """The index of a capture of `size` bytes whose records start at `first`, from its
    tail; None when there is none, or the tail is not one (cut short, changed since)."""
    if size - END_SIZE < first:
        return None
    file.seek(size - END_SIZE)
    tail = file.read(END_SIZE)
    length, crc = struct.unpack_from(">II", tail)
    payload = tail[8:]
    if (length != _END_PAYLOAD or not payload.startswith(_END_PREFIX)
            or zlib.crc32(payload) != crc):
        return None
    offset = int.from_bytes(payload[-8:], "big")
    if not first <= offset <= size - END_SIZE - 8:
        return None
    file.seek(offset)
    length, crc = struct.unpack(">II", file.read(8))
    if offset + 8 + length != size - END_SIZE:
        return None
    payload = file.read(length)
    if len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        tests = _decode_index(payload).tests
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if any(len(b) % _ENTRY for b in tests.values()):
        return None
    return tests


def _entries(data: bytes) -> Iterator[tuple[int, int, int]]:
    n = len(data) // _ENTRY
    offsets, numbers, rows = array("Q"), array("I"), array("I")
    offsets.frombytes(data[:8 * n])
    numbers.frombytes(data[8 * n:12 * n])
    rows.frombytes(data[12 * n:])
    if sys.byteorder == "little":
        for a in (offsets, numbers, rows):
            a.byteswap()
    return zip(offsets, numbers, rows, strict=True)


def _named(name: str, data: bytes) -> Iterator[tuple[tuple[int, int, int], str]]:
    return ((entry, name) for entry in _entries(data))


class _Stale(Exception):
    pass


TestRecords = Iterator[tuple[int | str | None, Record]]


def records_of_tests(reader, wanted) -> TestRecords:
    """(row, record) of every exchange, tunnel and test record of the tests `wanted(name)`
    accepts, in file order: row as `show` numbers them (exchanges 1, 2…; tunnels t1,
    t2…; None for a test record). From the index when the capture has a sound one, else
    (or from the first record that belongs elsewhere) by reading the capture."""
    tests = reader.index()
    done: set[int] = set()
    if tests is not None:
        # Each test's entries are in file order: merged lazily, they stay in file order.
        chosen = heapq.merge(*(_named(name, data) for name, data in tests.items()
                               if wanted(name)))
        try:
            for (offset, number, row), name in chosen:
                try:
                    record = reader.record_at((number, offset))
                except CaptureError:
                    raise _Stale from None
                if _belongs_to(record) != name:
                    raise _Stale
                done.add(offset)
                yield _row(record, row), record
            return
        except _Stale:
            pass  # read it all: what was given stays given, the rest follows
    yield from _scan(reader, wanted, done)


def _row(record: Record, row: int) -> int | str | None:
    if isinstance(record, Exchange):
        return row
    if isinstance(record, Tunnel):
        return f"t{row}"
    return None


def _scan(reader, wanted, done: set[int]) -> TestRecords:
    reader.rewind()
    exchanges = tunnels = 0
    for record in reader.records(kinds=(Exchange, Tunnel, TestCase)):
        if isinstance(record, Exchange):
            exchanges += 1
            row: int | str | None = exchanges
        elif isinstance(record, Tunnel):
            tunnels += 1
            row = f"t{tunnels}"
        else:
            row = None
        name = _belongs_to(record)
        if name is not None and wanted(name) and reader.position[1] not in done:
            yield row, record
