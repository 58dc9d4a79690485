"""The `.tap` file format: real files written by CaptureWriter and read back by open_capture.

Hand-made frames are built with msgpack + zlib + struct directly, as another tool would
(see docs/capture-format.md). Frames are numbered from 0, the header being record 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import os
import random
import re
import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapproxy.capture import (
    CaptureError,
    CaptureWriter,
    ErrorInfo,
    Exchange,
    GrpcMessage,
    Headers,
    Party,
    Request,
    ResourceSample,
    Response,
    ServiceLog,
    SessionHeader,
    TestCase,
    Timing,
    Tunnel,
    WebSocketEnd,
    WebSocketMessage,
    open_capture,
)
from tapproxy.capture.encoding import body_json
from tapproxy.capture.format import FORMAT_MINOR, FORMAT_VERSION, MAGIC
from tapproxy.capture.model import ERROR_KINDS

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in epoch nanoseconds

HEADER = SessionHeader(
    version=FORMAT_VERSION,
    minor=FORMAT_MINOR,
    created=T0,
    tool="tapproxy test",
    meta={"listen": "127.0.0.1:8080", "modes": ["regular", "reverse:http://orders:80"]},
)

EXCHANGE_OK = Exchange(
    id="x1",
    caller=Party("checkout", "proxy-auth", "172.18.0.5:51234"),
    callee=Party("orders", "service-map", "172.18.0.7:80"),
    request=Request(
        method="POST",
        scheme="http",
        host="orders",
        port=80,
        path="/orders?expand=items",
        http_version="HTTP/1.1",
        headers=Headers((("Content-Type", "application/json"), ("authorization", "<redacted>"))),
        body=b'{"sku": "A-1", "qty": 2}',
    ),
    response=Response(
        status=201,
        reason="Created",
        http_version="HTTP/1.1",
        headers=Headers((("content-encoding", "gzip"), ("set-cookie", "a=1"), ("set-cookie", "b"))),
        body=gzip.compress(b'{"ok": true}', mtime=0),
    ),
    timing=Timing(
        request_start=T0 + 1_000,
        request_end=T0 + 2_000,
        response_start=T0 + 5_000_000,
        response_end=T0 + 6_000_000,
        client_conn_start=T0,
        server_conn_start=T0 + 2_100,
        server_tcp_done=T0 + 300_000,
    ),
    test="tests/test_orders.py::test_create",
    test_source="control",
    route="/orders",
    redacted=("request.header:authorization",),
)

EXCHANGE_FAILED = Exchange(
    id="x2",
    caller=Party("172.18.0.9:40000", "peer"),
    callee=Party("payments", "host"),
    request=Request("GET", "https", "payments", 8443, "/health", "HTTP/2.0"),
    timing=Timing(request_start=T0 + 10, request_end=T0 + 11, error_at=T0 + 30_000_000_000),
    error=ErrorInfo("timeout", "server did not answer within 30s"),
)

WS_HANDSHAKE = dataclasses.replace(
    EXCHANGE_OK,
    id="ws1",
    request=dataclasses.replace(EXCHANGE_OK.request, method="GET", path="/live", body=b""),
    response=Response(101, "Switching Protocols", "HTTP/1.1"),
    websocket=True,
    redacted=(),
)

TUNNEL = Tunnel(
    id="t1",
    caller=Party("browser", "listener", "127.0.0.1:50000"),
    callee=Party("127.0.0.1", "host", "127.0.0.1:6379"),
    reason="server_first",
    started=T0 + 40,
    ended=T0 + 90,
    bytes_from_client=5,
    bytes_from_server=1000,
    first_from_client=b"PING\n",
    first_from_server=b"\x00" * 256,
    error=ErrorInfo("reset", "connection reset by peer"),
    test="tests/test_cache.py::test_hit",
    test_source="control",
)

EXCHANGE_GRPC = Exchange(
    id="g1",
    caller=Party("web", "proxy-auth"),
    callee=Party("echo", "reverse"),
    request=Request("POST", "http", "echo", 50051, "/taptest.Echo/Bidi", "HTTP/2.0",
                    Headers((("content-type", "application/grpc"),)),
                    b"\x00\x00\x00\x00\x01x\x01\x00\x00\x00\x02zz"),
    response=Response(200, "", "HTTP/2.0", Headers((("content-type", "application/grpc"),)),
                      b"\x00\x00\x00\x00\x00",
                      trailers=Headers((("grpc-status", "13"), ("grpc-message", "boom")))),
    timing=Timing(request_start=T0, response_end=T0 + 9),
    grpc_messages=(GrpcMessage(True, False, T0 + 1, b"x"),
                   GrpcMessage(False, False, T0 + 2, b""),
                   GrpcMessage(True, True, T0 + 3, b"zz")),
)

ALL_KINDS = [
    TestCase("tests/test_orders.py::test_create", started=T0, ended=T0 + 9, outcome="passed"),
    EXCHANGE_OK,
    EXCHANGE_FAILED,
    EXCHANGE_GRPC,
    TestCase("tests/test_orders.py::test_open", started=T0 + 10),
    WS_HANDSHAKE,
    WebSocketMessage("ws1", from_client=True, is_text=True, content=b"hello", timestamp=T0 + 20),
    WebSocketMessage("ws1", from_client=False, is_text=False, content=b"\x00\xff",
                     timestamp=T0 + 21),
    WebSocketEnd("ws1", timestamp=T0 + 30, close_code=1000, close_reason="bye"),
    WebSocketEnd("ws2", timestamp=T0 + 31, error="connection reset"),
    TUNNEL,
    ServiceLog("payments", "stderr", "ERROR card declined: \x1b[31m", timestamp=T0 + 40),
    ResourceSample("payments", timestamp=T0 + 41, pid=4242, cpu_percent=12.5, rss=31 << 20,
                   threads=3, fds=11),
    ResourceSample("payments", timestamp=T0 + 42, pid=4242, cpu_percent=0.0, rss=1, threads=1),
]

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def write_capture(path: Path, records, header: SessionHeader = HEADER,
                  index: bool = False) -> bytes:
    # Without the closing index by default: these tests are about the records' frames
    # (the index's own are in test_index.py).
    writer = CaptureWriter(path, header, index=index)
    for record in records:
        writer.write(record)
    writer.close()
    return path.read_bytes()


def read_capture(path: Path) -> list:
    with open_capture(path) as reader:
        return list(reader)


def frame(obj: object) -> bytes:
    """A frame as the format document describes it, built without tapproxy's code."""
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def frame_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every frame after the magic; the header frame comes first."""
    spans, offset = [], len(MAGIC)
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        spans.append((offset, offset + 8 + length))
        offset += 8 + length
    assert offset == len(data)
    return spans


HEADER_WIRE = {"kind": "header", "format": "tapproxy-capture", "version": FORMAT_VERSION,
               "minor": FORMAT_MINOR, "created": T0, "tool": "other-tool 3.1", "meta": {}}


# --- round trip ---------------------------------------------------------------------------


def test_every_record_kind_round_trips(tmp_path):
    path = tmp_path / "all.tap"
    write_capture(path, ALL_KINDS)
    with open_capture(path) as reader:
        assert reader.header == HEADER
        assert list(reader) == ALL_KINDS
        assert reader.truncated is False
        assert reader.problem is None


def test_bodies_keep_their_content_encoding(tmp_path):
    path = tmp_path / "gz.tap"
    write_capture(path, [EXCHANGE_OK])
    [x] = read_capture(path)
    assert x.response.body == EXCHANGE_OK.response.body  # gzip bytes, as on the wire
    assert body_json(x.response) == {"ok": True}
    assert body_json(x.request) == {"sku": "A-1", "qty": 2}


def test_the_file_starts_with_the_magic_and_a_header_frame(tmp_path):
    path = tmp_path / "magic.tap"
    data = write_capture(path, [ALL_KINDS[0]])
    assert data[:8] == bytes.fromhex("935441504341500a")
    (start, end), (_, last) = frame_spans(data)
    _, crc = struct.unpack_from(">II", data, start)
    assert zlib.crc32(data[start + 8 : end]) == crc
    header = msgpack.unpackb(data[start + 8 : end])
    assert header["kind"] == "header"
    assert header["format"] == "tapproxy-capture"
    assert (header["version"], header["minor"]) == (FORMAT_VERSION, FORMAT_MINOR)
    assert last == len(data)


def _wire_text(max_size: int = 16):
    """Header text as mitmproxy gives it: any unicode, or arbitrary bytes surrogate-escaped."""
    return st.one_of(
        st.text(max_size=max_size),
        st.binary(max_size=max_size).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )


_opt_ns = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
_bodies = st.one_of(st.just(b""), st.binary(max_size=600))
_headers = st.lists(st.tuples(_wire_text(), _wire_text(40)), max_size=6).map(
    lambda fields: Headers(tuple(fields))
)
_exchanges = st.builds(
    Exchange,
    id=st.text(min_size=1, max_size=12),
    caller=st.builds(
        Party, st.text(max_size=20), st.sampled_from(["proxy-auth", "header", "peer", "har"]),
        st.none() | st.text(max_size=21),
    ),
    callee=st.builds(
        Party, st.text(max_size=20), st.sampled_from(["reverse", "service-map", "host"]),
        st.none() | st.text(max_size=21),
    ),
    request=st.builds(
        Request,
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"]),
        scheme=st.sampled_from(["http", "https", "ws", "wss"]),
        host=st.text(max_size=30),
        port=st.integers(min_value=0, max_value=65535),
        path=st.text(max_size=40),
        http_version=st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3"]),
        headers=_headers,
        body=_bodies,
        trailers=st.none() | _headers,
    ),
    timing=st.builds(
        Timing, st.integers(min_value=0, max_value=2**63 - 1), _opt_ns, _opt_ns, _opt_ns,
        _opt_ns, _opt_ns, _opt_ns, _opt_ns, _opt_ns, _opt_ns,
    ),
    response=st.none()
    | st.builds(
        Response,
        status=st.integers(min_value=100, max_value=999),
        reason=st.text(max_size=20),
        http_version=st.sampled_from(["HTTP/1.1", "HTTP/2.0"]),
        headers=_headers,
        body=_bodies,
        trailers=st.none() | _headers,
    ),
    error=st.none() | st.builds(ErrorInfo, st.sampled_from(ERROR_KINDS), st.text(max_size=40)),
    test=st.none() | st.text(max_size=30),
    test_source=st.none() | st.sampled_from(["header", "control", "ambiguous"]),
    route=st.none() | st.text(max_size=20),
    streamed=st.booleans(),
    websocket=st.booleans(),
    redacted=st.lists(st.text(max_size=30), max_size=3).map(tuple),
)


@FAST
@given(exchanges=st.lists(_exchanges, min_size=1, max_size=4))
def test_random_exchanges_round_trip(tmp_path, exchanges):
    path = tmp_path / "random.tap"
    write_capture(path, exchanges)
    assert read_capture(path) == exchanges


def test_grpc_messages_are_stored_as_lengths_into_the_bodies(tmp_path):
    path = tmp_path / "grpc.tap"
    data = write_capture(path, [EXCHANGE_GRPC])
    [payload] = [msgpack.unpackb(data[a + 8:b]) for a, b in frame_spans(data)][1:]
    assert payload["grpc_messages"] == [
        {"from_client": True, "compressed": False, "timestamp": T0 + 1, "length": 1},
        {"from_client": False, "compressed": False, "timestamp": T0 + 2, "length": 0},
        {"from_client": True, "compressed": True, "timestamp": T0 + 3, "length": 2}]
    assert payload["response"]["trailers"] == [[b"grpc-status", b"13"],
                                               [b"grpc-message", b"boom"]]
    assert "trailers" not in payload["request"]  # none were sent
    [x] = read_capture(path)
    assert (x.grpc_status_name, x.grpc_message, x.failed) == ("INTERNAL", "boom", True)


def test_a_malformed_grpc_message_index_names_the_record(tmp_path):
    path = tmp_path / "bad.tap"
    data = write_capture(path, [EXCHANGE_GRPC])
    (a, b) = frame_spans(data)[1]
    payload = msgpack.unpackb(data[a + 8:b])
    payload["grpc_messages"] = [{"from_client": True}]
    path.write_bytes(data[:a] + frame(payload))
    with pytest.raises(CaptureError, match=r"record 1 .*\(exchange\) is malformed: field "
                                           r"grpc_messages\[0\]\.timestamp is missing"):
        read_capture(path)


# --- truncation and corruption ------------------------------------------------------------


def test_truncation_at_every_offset_keeps_the_whole_records_before_it(tmp_path):
    full = tmp_path / "full.tap"
    data = write_capture(full, ALL_KINDS)
    spans = frame_spans(data)
    header_end = spans[0][1]
    ends = [end for _, end in spans[1:]]
    cut_file = tmp_path / "cut.tap"
    cut_file.write_bytes(data)
    for cut in reversed(range(header_end, len(data))):
        os.truncate(cut_file, cut)
        complete = sum(1 for end in ends if end <= cut)
        with open_capture(cut_file) as reader:
            assert list(reader) == ALL_KINDS[:complete], cut
            on_boundary = cut == header_end or cut in ends
            assert reader.truncated is not on_boundary, cut
            if on_boundary:
                assert reader.problem is None
            else:
                assert str(cut_file) in reader.problem
                assert re.search(rf"\brecord {complete + 1}\b", reader.problem), reader.problem


def test_truncation_inside_the_header_is_an_error(tmp_path):
    data = write_capture(tmp_path / "full.tap", [])
    for cut in (len(MAGIC), len(MAGIC) + 3, len(data) - 1):
        path = tmp_path / f"cut{cut}.tap"
        path.write_bytes(data[:cut])
        with pytest.raises(CaptureError, match="header") as e:
            open_capture(path)
        assert str(path) in str(e.value)


@FAST
@given(data=st.data())
def test_a_flipped_payload_byte_is_reported_with_its_record_number(tmp_path, data):
    full = tmp_path / "full.tap"
    original = write_capture(full, ALL_KINDS)
    spans = frame_spans(original)
    index = data.draw(st.integers(min_value=1, max_value=len(spans) - 1), label="record")
    start, end = spans[index]
    offset = data.draw(st.integers(min_value=start + 8, max_value=end - 1), label="offset")
    xor = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    corrupt = bytearray(original)
    corrupt[offset] ^= xor
    path = tmp_path / "corrupt.tap"
    path.write_bytes(bytes(corrupt))

    seen = []
    with open_capture(path) as reader, pytest.raises(CaptureError) as e:
        for record in reader:
            seen.append(record)
    assert seen == ALL_KINDS[: index - 1]
    assert str(path) in str(e.value)
    assert re.search(rf"\brecord {index}\b", str(e.value)), str(e.value)


def test_a_corrupt_header_frame_is_reported_as_record_0(tmp_path):
    data = bytearray(write_capture(tmp_path / "full.tap", ALL_KINDS))
    data[len(MAGIC) + 12] ^= 0x40
    path = tmp_path / "corrupt.tap"
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=r"record 0\b") as e:
        open_capture(path)
    assert str(path) in str(e.value)


# --- compatibility ------------------------------------------------------------------------


def test_unknown_record_kinds_and_fields_from_another_tool_are_skipped(tmp_path):
    path = tmp_path / "newer.tap"
    newer_header = {**HEADER_WIRE, "minor": FORMAT_MINOR + 7, "compression": "none"}
    exchange = {
        "kind": "exchange", "id": "e1", "priority": 3,
        "caller": {"name": "web", "source": "header", "uid": 12},
        "callee": {"name": "api", "source": "reverse"},
        "request": {"method": "GET", "scheme": "http", "host": "api", "port": 8000,
                    "path": "/v1", "http_version": "HTTP/1.1", "priority": [3, 1],
                    "headers": [[b"accept", b"*/*"]]},
        "response": {"status": 204, "early_hints": [[b"link", b"</a.css>"]]},
        "timing": {"request_start": T0, "response_end": T0 + 5, "dns_done": T0 + 1},
    }
    path.write_bytes(
        MAGIC
        + frame(newer_header)
        + frame({"kind": "span", "trace_id": b"\x01" * 16, "name": "GET /v1"})
        + frame({"kind": "test", "name": "t", "started": T0, "retries": 2})
        + frame(exchange)
        + frame({"kind": "ws_message", "exchange_id": "e1", "from_client": True,
                 "is_text": False, "content": b"\x89", "timestamp": T0, "opcode": 9})
        + frame({"kind": "checkpoint", "records": 3})
    )
    with open_capture(path) as reader:
        assert reader.header.minor == FORMAT_MINOR + 7
        assert reader.header.tool == "other-tool 3.1"
        assert list(reader) == [
            TestCase("t", started=T0),
            Exchange(
                id="e1",
                caller=Party("web", "header"),
                callee=Party("api", "reverse"),
                request=Request("GET", "http", "api", 8000, "/v1", "HTTP/1.1",
                                Headers((("accept", "*/*"),))),
                response=Response(204, "", ""),
                timing=Timing(request_start=T0, response_end=T0 + 5),
            ),
            WebSocketMessage("e1", True, False, b"\x89", T0),
        ]
        assert reader.truncated is False


def test_a_tunnel_record_with_only_its_required_fields_reads_with_defaults(tmp_path):
    # What another tool writing docs/capture-format.md's required tunnel fields produces.
    path = tmp_path / "tunnel.tap"
    path.write_bytes(MAGIC + frame(HEADER_WIRE) + frame({
        "kind": "tunnel", "id": "t9", "reason": "a-reason-from-a-newer-writer",
        "caller": {"name": "10.0.0.2", "source": "peer"},
        "callee": {"name": "db", "source": "host"},
        "started": T0, "window": 4}))
    [t] = read_capture(path)
    assert t == Tunnel("t9", Party("10.0.0.2", "peer"), Party("db", "host"),
                       "a-reason-from-a-newer-writer", T0)
    assert (t.failed, t.duration_ns, t.why) == (False, 0, "a-reason-from-a-newer-writer")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("bytes_from_client", "12", "field bytes_from_client is str '12', not int"),
    ("first_from_server", "text", "field first_from_server is str 'text', not bin"),
    ("started", None, "field started is nil, not int"),
])
def test_a_tunnel_record_with_a_bad_field_is_named(tmp_path, field, value, message):
    path = tmp_path / "bad-tunnel.tap"
    tunnel = {"kind": "tunnel", "id": "t1", "reason": "not_http", "started": T0,
              "caller": {"name": "a", "source": "peer"}, "callee": {"name": "b", "source": "host"}}
    path.write_bytes(MAGIC + frame(HEADER_WIRE) + frame({**tunnel, field: value}))
    with pytest.raises(CaptureError) as e:
        read_capture(path)
    at = len(MAGIC) + len(frame(HEADER_WIRE))
    assert str(e.value) == f"{path}: record 1 at byte {at} (tunnel) is malformed: {message}"


def test_a_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "v2.tap"
    path.write_bytes(MAGIC + frame({**HEADER_WIRE, "version": FORMAT_VERSION + 1}))
    with pytest.raises(CaptureError, match="newer") as e:
        open_capture(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.write_bytes(b'{"log": {"version": "1.2"}}'), id="json"),
        pytest.param(lambda p: p.write_bytes(random.Random(7).randbytes(300)), id="random"),
        pytest.param(lambda p: p.write_bytes(MAGIC[:5]), id="short-magic"),
        pytest.param(lambda p: p.write_bytes(MAGIC), id="magic-only"),
        pytest.param(lambda p: p.write_bytes(MAGIC + frame({"kind": "test", "name": "t",
                                                             "started": 1})), id="no-header"),
        pytest.param(lambda p: p.write_bytes(MAGIC + frame([1, 2])), id="header-not-a-map"),
        pytest.param(lambda p: p.mkdir(), id="directory"),
        pytest.param(lambda p: None, id="missing"),
    ],
)
def test_what_is_not_a_capture_is_refused_naming_the_path(tmp_path, make):
    path = tmp_path / "input.tap"
    make(path)
    with pytest.raises(CaptureError) as e:
        open_capture(path)
    assert str(path) in str(e.value)


# --- reading while writing ----------------------------------------------------------------


def test_follow_receives_records_while_they_are_written(tmp_path):
    path = tmp_path / "live.tap"
    writer = CaptureWriter(path, HEADER)
    reader = open_capture(path)
    by_writer = [TestCase(f"t{i}", started=T0 + i) for i in range(25)] + ALL_KINDS
    by_hand = TestCase("split", started=T0, ended=T0 + 1, outcome="written in two halves")
    split = frame({"kind": "test", "name": "split", "started": T0, "ended": T0 + 1,
                   "outcome": "written in two halves"})
    half_written, reader_saw_half, done = threading.Event(), threading.Event(), threading.Event()

    def append():
        for record in by_writer:
            writer.write(record)
            writer.flush()
        writer.close()
        with path.open("ab") as f:
            f.write(split[: len(split) // 2])
            f.flush()
            half_written.set()
            reader_saw_half.wait(10)
            f.write(split[len(split) // 2 :])
        done.set()

    done_seen = False
    give_up = time.monotonic() + 30  # guards against a hang only; nothing is timed

    def stop() -> bool:
        nonlocal done_seen
        if half_written.is_set() and reader.truncated:
            reader_saw_half.set()
        # One more read after the writer is done: see test_follow_stop_does_not_lose_...
        if done_seen or time.monotonic() > give_up:
            return True
        done_seen = done.is_set()
        return False

    thread = threading.Thread(target=append)
    thread.start()
    try:
        received = list(reader.records(follow=True, poll=0.005, stop=stop))
    finally:
        thread.join()
        reader.close()
    assert reader_saw_half.is_set()
    assert received == [*by_writer, by_hand]
    assert reader.truncated is False


def test_flush_makes_records_visible_before_close(tmp_path):
    path = tmp_path / "flushed.tap"
    writer = CaptureWriter(path, HEADER)
    try:
        for record in ALL_KINDS[:3]:
            writer.write(record)
        writer.flush()
        assert read_capture(path) == ALL_KINDS[:3]
        writer.write(ALL_KINDS[3])
        writer.flush()
        assert read_capture(path) == ALL_KINDS[:4]
    finally:
        writer.close()


def test_submit_applies_backpressure_and_loses_nothing(tmp_path):
    path = tmp_path / "backpressure.tap"
    gate = threading.Event()
    writer = CaptureWriter(path, HEADER, max_queue=2)
    disk = writer._write_batch

    def slow_disk(buffers):
        gate.wait(10)  # a disk that has stopped keeping up, until the queue is full
        disk(buffers)

    writer._write_batch = slow_disk
    records = [TestCase(f"t{i}", started=T0 + i) for i in range(40)]
    awaited = 0

    async def produce():
        nonlocal awaited
        for record in records:
            pending = writer.submit(record)
            if pending is not None:
                awaited += 1
                gate.set()
                assert await pending is None

    asyncio.run(produce())
    writer.close()
    assert awaited >= 1
    assert read_capture(path) == records


def test_a_writer_that_cannot_create_its_file_says_which(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "out.tap"
    with pytest.raises(CaptureError) as e:
        CaptureWriter(path, HEADER)
    assert str(path) in str(e.value)


def test_a_failing_transform_is_named_and_the_capture_goes_on(tmp_path):
    bad = ALL_KINDS[1]

    def explode(record):
        if record is bad:
            raise ValueError("redaction rule broke")
        return record

    path = tmp_path / "t.tap"
    writer = CaptureWriter(path, HEADER, transform=explode)
    writer.write(ALL_KINDS[0])
    with pytest.raises(CaptureError, match="redaction rule broke") as e:
        writer.write(bad)
    assert str(path) in str(e.value)
    writer.write(ALL_KINDS[2])
    writer.close()
    assert read_capture(path) == [ALL_KINDS[0], ALL_KINDS[2]]


# --- memory shape ---------------------------------------------------------------------------


def test_reading_a_large_capture_streams(tmp_path):
    # A long WebSocket session with the odd exchange: 50,000 records, ~40 MB on disk.
    path = tmp_path / "large.tap"
    count = 50_000
    payload = bytes(range(256)) * 3
    writer = CaptureWriter(path, HEADER)
    for i in range(count):
        if i % 100 == 0:
            writer.write(dataclasses.replace(EXCHANGE_OK, id=str(i)))
        else:
            writer.write(WebSocketMessage("ws1", i % 2 == 0, False, payload, timestamp=i))
    writer.close()
    limit = 4 * 1024 * 1024
    assert path.stat().st_size > 8 * limit  # holding every record could not fit the limit

    seen = exchanges = 0
    tracemalloc.start()
    try:
        with open_capture(path) as reader:
            for record in reader:
                exchanges += isinstance(record, Exchange)
                seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (seen, exchanges) == (count, count // 100)
    assert peak < limit, f"peak {peak} bytes while reading"


# --- regressions: each test below failed once, for the reason its comment gives ------------


def test_request_path_with_non_utf8_bytes_round_trips(tmp_path):
    # mitmproxy decodes the request target with surrogateescape, so a raw byte >= 0x80 in
    # the path gives lone surrogates that msgpack cannot encode as str: the writer thread
    # failed and every later record of the session was dropped.
    path = tmp_path / "latin1.tap"
    odd = dataclasses.replace(
        EXCHANGE_FAILED,
        request=dataclasses.replace(
            EXCHANGE_FAILED.request, path=b"/caf\xe9?q=\xff".decode("utf-8", "surrogateescape")
        ),
    )
    writer = CaptureWriter(path, HEADER)
    writer.write(odd)
    writer.write(EXCHANGE_OK)
    writer.flush()  # raised "surrogates not allowed"; close() could hang, see below
    writer.close()
    assert read_capture(path) == [odd, EXCHANGE_OK]


def test_follow_stop_does_not_lose_records_appended_before_it_turned_true(tmp_path):
    # records() asks stop() after an empty read; a record appended between that read and
    # stop() turning true (the writer finishing, then signalling) was never yielded.
    path = tmp_path / "race.tap"
    writer = CaptureWriter(path, HEADER)
    first, last = TestCase("first", started=T0), TestCase("last", started=T0 + 1)
    writer.write(first)
    writer.flush()

    def stop() -> bool:  # the writer finishes right between the empty read and this call
        if writer.records_written == 1:
            writer.write(last)
            writer.close()
        return True

    with open_capture(path) as reader:
        assert list(reader.records(follow=True, poll=0.001, stop=stop)) == [first, last]


def test_writing_after_close_raises(tmp_path):
    # After close() the writer thread is gone: a record queued then was silently lost (and
    # a later flush() would wait forever on the queue).
    writer = CaptureWriter(tmp_path / "closed.tap", HEADER)
    writer.close()
    with pytest.raises(CaptureError):
        writer.write(ALL_KINDS[0])


def test_a_corrupt_length_does_not_allocate_the_claimed_size(tmp_path):
    # A damaged length field (up to 2 GiB is accepted) made the reader ask read() for that
    # many bytes, and BufferedReader allocates the whole buffer up front.
    data = bytearray(write_capture(tmp_path / "full.tap", ALL_KINDS))
    start, _ = frame_spans(bytes(data))[2]
    struct.pack_into(">I", data, start, 0x7FFF_FF00)
    path = tmp_path / "badlength.tap"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with open_capture(path) as reader, pytest.raises(CaptureError, match="length field"):
            list(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {len(data)}-byte file"


@pytest.mark.parametrize(("which", "damage"), [
    pytest.param(-1, lambda n: n + 1, id="last-one-more"),
    pytest.param(-1, lambda n: n | 0x0100_0000, id="last-high-bit"),
    pytest.param(1, lambda n: n | 0x0100_0000, id="first-high-bit"),
    pytest.param(2, lambda n: 0x7FFF_FFFF, id="second-2GiB"),
])
def test_a_damaged_length_past_the_end_is_corruption_not_a_cut_off_tail(tmp_path, which, damage):
    # The length is the one field the CRC does not cover: a larger one reaches past the end
    # of the file as a killed writer's last frame does, but the bytes there hold a whole
    # record (and, but for the last frame, more frames), never a record's prefix.
    data = bytearray(write_capture(tmp_path / "full.tap", ALL_KINDS))
    spans = frame_spans(bytes(data))
    n = which % len(spans)
    start, _ = spans[n]
    (length,) = struct.unpack_from(">I", data, start)
    struct.pack_into(">I", data, start, damage(length))
    path = tmp_path / "damaged.tap"
    path.write_bytes(bytes(data))
    with open_capture(path) as reader:
        kept = []
        with pytest.raises(CaptureError) as e:
            kept.extend(reader)
        assert not reader.truncated
    assert str(e.value) == (
        f"{path}: record {n} at byte {start} is corrupt: its length field says "
        f"{damage(length)} bytes, only {len(data) - start - 8} follow and a whole record "
        "ends within them (a damaged length, not a cut-off end)")
    assert len(kept) == n - 1


def test_a_cut_off_tail_is_still_a_truncation_not_corruption(tmp_path):
    data = write_capture(tmp_path / "full.tap", ALL_KINDS)
    start, end = frame_spans(data)[-1]
    for cut in (start + 8 + 1, (start + end) // 2, end - 1):
        path = tmp_path / "cut.tap"
        path.write_bytes(data[:cut])
        with open_capture(path) as reader:
            assert len(list(reader)) == len(ALL_KINDS) - 1
            assert reader.truncated
            assert "ends inside record" in reader.problem


def test_a_full_disk_is_reported_and_close_still_returns(tmp_path):
    writer = CaptureWriter(tmp_path / "full-disk.tap", HEADER)

    def full_disk(buffers):
        raise OSError(28, "No space left on device")

    writer._write_batch = full_disk
    writer.write(ALL_KINDS[0])
    outcome: list[BaseException | None] = []

    def close():
        try:
            writer.close()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive(), "close() hangs after a failed write"
    assert isinstance(outcome[0], CaptureError)
    assert "No space left" in str(outcome[0])
    with pytest.raises(CaptureError, match="closed"):
        writer.write(ALL_KINDS[1])



def _resident_pages(path: Path, length: int) -> int:
    """How many pages of the file's first `length` bytes are in the page cache (mincore)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mmap.restype = ctypes.c_void_p
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    vec = ctypes.create_string_buffer((length + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
    with open(path, "rb") as f:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            assert libc.mincore(addr, length, vec) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(addr, length)
    return sum(b & 1 for b in vec.raw)


def _filesystem(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        mount, fstype = line.split()[1:3]
        if str(path).startswith(mount) and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


@pytest.mark.skipif(not hasattr(os, "posix_fadvise") or not Path("/proc/mounts").exists(),
                    reason="page-cache release is Linux-only")
def test_a_long_capture_does_not_pile_up_in_the_page_cache(tmp_path):
    # A recording writes gigabytes nobody reads back soon; on a VM whose memory is backed
    # lazily, letting them fill the cache made each further MiB cost 2.4 ms of kernel time.
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("a memory filesystem has no page cache to release")
    path = tmp_path / "long.tap"
    body = os.urandom(1 << 20)
    writer = CaptureWriter(path, HEADER)
    n = 160
    for i in range(n):
        writer.write(dataclasses.replace(
            EXCHANGE_OK, id=f"x{i}", response=dataclasses.replace(EXCHANGE_OK.response,
                                                                  body=body)))
    writer.close()
    # The first 64 MiB, written back a window later, left the cache (the last windows
    # stay: a capture read right after a short run comes from memory)…
    early = 64 << 20
    assert _resident_pages(path, early) < (early // 4096) // 4
    # …and everything is in the file, in order.
    with open_capture(path) as reader:
        ids = [r.id for r in reader]
        assert not reader.truncated
    assert ids == [f"x{i}" for i in range(n)]


# --- reading only some kinds ----------------------------------------------------------


def test_records_of_the_kinds_asked_for_only(tmp_path):
    path = tmp_path / "kinds.tap"
    write_capture(path, ALL_KINDS)
    with open_capture(path) as reader:
        got = list(reader.records(kinds=(TestCase, Tunnel)))
    assert got == [r for r in ALL_KINDS if isinstance(r, TestCase | Tunnel)]
    assert got


def test_kinds_are_found_in_maps_another_tool_wrote_in_any_key_order(tmp_path):
    path = tmp_path / "order.tap"
    test = {"name": "t1", "started": T0, "ended": T0 + 1, "outcome": "passed", "kind": "test"}
    other = {"service": "a", "stream": "stdout", "line": "hi", "timestamp": T0,
             "kind": "service_log"}
    path.write_bytes(MAGIC + frame(HEADER_WIRE) + frame(other) + frame(test))
    with open_capture(path) as reader:
        assert list(reader.records(kinds=(TestCase,))) == [TestCase("t1", T0, T0 + 1, "passed")]
