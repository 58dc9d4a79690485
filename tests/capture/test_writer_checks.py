"""The writer refuses what the reader would refuse: every record it accepts reads back
equal, so no capture tapproxy writes fails at `show` (an imported port -5 did)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
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
    SpanBatch,
    TestCase,
    Timing,
    Tunnel,
    WebSocketEnd,
    WebSocketMessage,
    new_header,
    open_capture,
)

# Mostly ints every field takes, else one around a bound the format has (0, ports,
# statuses, int64, uint64) or anything: so that records are often accepted, often not.
_FITS = st.integers(0, 999)
INTS = st.one_of(_FITS, _FITS, _FITS, _FITS, _FITS, _FITS, st.integers(-2**65, 2**65),
                 st.sampled_from([-1, 0, 999, 1000, 65535, 65536, 2**63 - 1, 2**63, 2**64]))
TEXT = st.one_of(st.text(max_size=8),
                 st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")))
MAYBE_TEXT = st.none() | TEXT
BYTES = st.binary(max_size=16)
HEADERS = st.one_of(st.lists(st.tuples(TEXT, TEXT), max_size=3).map(lambda f: Headers(tuple(f))),
                    st.lists(st.tuples(BYTES, BYTES), max_size=3).map(
                        lambda f: Headers.from_raw(tuple(f))))
PARTY = st.builds(Party, TEXT, TEXT, MAYBE_TEXT)
TIMING = st.builds(Timing, INTS, st.none() | INTS, st.none() | INTS, st.none() | INTS)
ERROR = st.none() | st.builds(ErrorInfo, TEXT, TEXT)
GRPC = st.lists(st.builds(GrpcMessage, st.booleans(), st.booleans(), INTS, BYTES), max_size=2)
REQUEST = st.builds(Request, TEXT, TEXT, TEXT, INTS, TEXT, TEXT, HEADERS, BYTES,
                    st.none() | INTS, st.none() | BYTES, st.none() | HEADERS)
RESPONSE = st.none() | st.builds(Response, INTS, TEXT, TEXT, HEADERS, BYTES,
                                 st.none() | INTS, st.none() | BYTES, st.none() | HEADERS)
EXCHANGE = st.builds(
    Exchange, TEXT, PARTY, PARTY, REQUEST, TIMING, RESPONSE, ERROR, MAYBE_TEXT, MAYBE_TEXT,
    MAYBE_TEXT, st.booleans(), st.booleans(), st.lists(TEXT, max_size=2).map(tuple),
    GRPC.map(tuple))
RECORDS = st.one_of(
    EXCHANGE,
    st.builds(TestCase, TEXT, INTS, st.none() | INTS, MAYBE_TEXT),
    st.builds(WebSocketMessage, TEXT, st.booleans(), st.booleans(), BYTES, INTS),
    st.builds(WebSocketEnd, TEXT, INTS, st.none() | INTS, TEXT, MAYBE_TEXT),
    st.builds(SpanBatch, INTS, TEXT, BYTES, MAYBE_TEXT),
    st.builds(ServiceLog, TEXT, TEXT, TEXT, INTS),
    st.builds(ResourceSample, TEXT, INTS, INTS, st.floats(), INTS, INTS, st.none() | INTS),
    st.builds(Tunnel, TEXT, PARTY, PARTY, TEXT, INTS, st.none() | INTS, INTS, INTS, BYTES,
              BYTES, ERROR, MAYBE_TEXT, MAYBE_TEXT),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(RECORDS, min_size=1, max_size=6))
def test_every_record_the_writer_accepts_reads_back_equal(tmp_path, records) -> None:
    path = tmp_path / "fuzz.tap"
    w = CaptureWriter(path, new_header(), None)
    accepted = []
    for r in records:
        try:
            w.write(r)
        except CaptureError as e:
            assert str(e).startswith(f"{path}: cannot record a {type(r).__name__}: "), e
            continue
        accepted.append(r)
    event(f"{len(accepted)} of {len(records)} accepted")
    w.close()
    with open_capture(path) as reader:
        back = list(reader)
        assert not reader.truncated
    assert list(map(_nan_free, back)) == list(map(_nan_free, accepted))


def _nan_free(r):
    """NaN reads back as NaN, but is never equal to itself: compare it as a marker."""
    if isinstance(r, ResourceSample) and math.isnan(r.cpu_percent):
        return dataclasses.replace(r, cpu_percent="nan")
    return r


def exchange(**changes) -> Exchange:
    kw = dict(id="x1", caller=Party("tests", "proxy-auth"), callee=Party("api", "host"),
              request=Request("GET", "http", "api", 80, "/", "HTTP/1.1"),
              timing=Timing(1_767_225_600_000_000_000))
    kw.update(changes)
    return Exchange(**kw)


@pytest.mark.parametrize(("record", "field"), [
    (exchange(request=Request("GET", "http", "api", -5, "/", "HTTP/1.1")),
     "field request.port is -5, out of range 0..65535"),
    (exchange(timing=Timing(-1)), "field timing.request_start is -1, out of range"),
    (exchange(response=Response(1000, "", "HTTP/1.1")),
     "field response.status is 1000, out of range 0..999"),
    (TestCase("t", 2**63), "field started is 9223372036854775808, out of range"),
    (exchange(grpc_messages=(GrpcMessage(True, False, 1, b"abc"),)),  # not in the body
     "field grpc_messages would not read back as written"),
])
def test_a_record_the_reader_would_refuse_is_refused_naming_the_field(tmp_path, record,
                                                                      field) -> None:
    path = tmp_path / "run.tap"
    w = CaptureWriter(path, new_header(), None)
    with pytest.raises(CaptureError) as e:
        w.write(record)
    w.write(exchange())  # the writer goes on
    w.close()
    assert str(e.value).startswith(f"{path}: cannot record a {type(record).__name__}: {field}")
    with open_capture(path) as reader:
        assert list(reader) == [exchange()]
