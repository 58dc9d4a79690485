"""The writer's fast paths must write exactly the frames the format defines: big bodies
spliced in from their own buffers, CRCs from isal, batches through writev."""

from __future__ import annotations

import struct
import zlib

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.capture.codec import header_to_wire, record_to_wire
from tapproxy.capture.format import MAGIC, new_header, open_capture
from tapproxy.capture.model import (
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    Timing,
    WebSocketMessage,
)
from tapproxy.capture.writer import CaptureWriter, encode_frame


def _plain_frame(obj: dict) -> bytes:
    """A frame built the obvious way, straight from docs/capture-format.md."""
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def _exchange(i: int, req_body: bytes, resp_body: bytes) -> Exchange:
    return Exchange(
        id=f"x{i}", caller=Party("a", "proxy-auth"), callee=Party("b", "host", "h:1"),
        request=Request("POST", "http", "h", 1, f"/u/{i}", "HTTP/1.1",
                        Headers((("content-type", "application/octet-stream"),)), req_body),
        response=Response(200, "OK", "HTTP/1.1", Headers(), resp_body),
        timing=Timing(request_start=1_000 + i, response_end=2_000 + i))


def _expected_file(header, records) -> bytes:
    return MAGIC + _plain_frame(header_to_wire(header)) + b"".join(
        _plain_frame(record_to_wire(r)) for r in records)


def test_big_bodies_are_spliced_into_identical_frames(tmp_path):
    mib = bytes(range(256)) * 4096
    records = [
        _exchange(0, b"small", b"also small"),
        _exchange(1, mib[: 100 * 1024], mib),  # both sides past the splice threshold
        WebSocketMessage("x1", True, False, mib[: 200 * 1024], 5),
        _exchange(2, b"", mib[: 64 * 1024]),  # exactly at the threshold
        _exchange(3, b"", mib[: 64 * 1024 - 1]),  # just under it
    ]
    header = new_header({"t": 1})
    path = tmp_path / "big.tap"
    writer = CaptureWriter(path, header, index=False)  # the records' frames alone
    for r in records:
        writer.write(r)
    writer.close()
    assert path.read_bytes() == _expected_file(header, records)
    with open_capture(path) as reader:
        assert list(reader) == records


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 150_000), st.integers(0, 150_000)), min_size=1,
                max_size=4))
def test_any_body_sizes_give_the_format_s_frames(tmp_path_factory, sizes):
    records = [_exchange(i, b"q" * a, b"r" * b) for i, (a, b) in enumerate(sizes)]
    header = new_header()
    path = tmp_path_factory.mktemp("w") / "sizes.tap"
    writer = CaptureWriter(path, header, index=False)  # the records' frames alone
    for r in records:
        writer.write(r)
    writer.close()
    assert path.read_bytes() == _expected_file(header, records)


# Every value a wire map can hold, with the lengths where msgpack changes its header
# (fixstr/str8/str16, bin8/bin16, fixarray/array16, fixmap/map16) and every int width.
_SIZES = st.sampled_from([0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536])
_SCALARS = (st.none() | st.booleans() | st.floats(allow_nan=False)
            | st.integers(-(2**63), 2**64 - 1)
            | st.sampled_from([-(2**63), -(2**31) - 1, -(2**31), -32769, -32768, -129, -128,
                               -33, -32, -1, 0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1,
                               2**32, 2**64 - 1])
            | st.text(max_size=40) | _SIZES.map(lambda n: "é" * (n // 2) + "x" * (n % 2))
            | st.binary(max_size=40) | _SIZES.map(lambda n: b"b" * n))
_WIRE = st.recursive(_SCALARS, lambda inner: (
    st.lists(inner, max_size=20).map(tuple) | st.lists(inner, max_size=20)
    | st.dictionaries(st.text(max_size=12), inner, max_size=20)
    | st.integers(15, 17).map(lambda n: dict.fromkeys(map(str, range(n)), 0))
    | st.integers(15, 17).map(lambda n: (None,) * n)), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _WIRE, max_size=12))
def test_a_frame_is_the_format_s_frame_for_any_wire_value(wire):
    assert encode_frame(wire) == _plain_frame(wire)


def test_flush_makes_everything_readable_without_closing(tmp_path):
    path = tmp_path / "live.tap"
    writer = CaptureWriter(path, new_header())
    records = [_exchange(i, b"", b"x" * (i * 40_000)) for i in range(5)]
    try:
        for r in records:
            writer.write(r)
        writer.flush()
        with open_capture(path) as reader:
            assert list(reader) == records and not reader.truncated
        assert writer.records_written == 5
    finally:
        writer.close()
