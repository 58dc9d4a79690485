"""The reader's fast path gives what the checked decoder gives, or steps aside.

Every record tapproxy writes takes the fast path; a map of any other shape (mutated
field by field here) is either decoded to the very record `codec` gives, or left to
`codec` (which then names the bad field): the fast path never accepts what `codec`
refuses.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings

from tapproxy.capture.codec import record_from_wire, record_to_wire
from tapproxy.capture.fastwire import Unusual, decode_record, peek_kind
from tapproxy.errors import CaptureError
from tests.capture.test_format import ALL_KINDS, _exchanges

_ODD_VALUES = [None, 0, -1, 1, 70_000, 2**63, 2**64 - 1, True, False, 1.5, "x", "", b"x",
               b"", [], {}, ["a"], [[b"a", b"b"]], [[b"a", "b"]], [[b"a"]], {"k": 1}]


def _wire(record) -> dict:
    # Through msgpack and back, as a file holds it (lists, not tuples).
    return msgpack.unpackb(msgpack.packb(record_to_wire(record), use_bin_type=True))


def _slow(payload: bytes):
    try:
        return record_from_wire(msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                                use_list=False))
    except CaptureError as e:
        return e


def _fast(payload: bytes):
    kind = msgpack.unpackb(payload)["kind"]
    try:
        return decode_record(kind, payload)
    except Unusual:
        return Unusual


def _paths(d: dict, prefix=()):
    for k, v in d.items():
        if k == "kind":
            continue
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _paths(v, (*prefix, k))


def _mutate(wire: dict, path: tuple, value) -> dict:
    out = msgpack.unpackb(msgpack.packb(wire, use_bin_type=True))
    d = out
    for k in path[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return out


_DELETE = object()


@pytest.mark.parametrize("record", ALL_KINDS, ids=lambda r: type(r).__name__)
def test_every_kind_as_written_takes_the_fast_path(record):
    payload = msgpack.packb(record_to_wire(record), use_bin_type=True)
    assert peek_kind(payload) is not None
    assert _fast(payload) == record


@pytest.mark.parametrize("record", ALL_KINDS, ids=lambda r: type(r).__name__)
def test_a_field_of_any_other_shape_reads_as_the_checked_decoder_reads_it(record):
    wire = _wire(record)
    steps = 0
    for path in _paths(wire):
        for value in [*_ODD_VALUES, _DELETE]:
            payload = msgpack.packb(_mutate(wire, path, value), use_bin_type=True)
            fast, slow = _fast(payload), _slow(payload)
            if fast is not Unusual:
                assert not isinstance(slow, CaptureError), (path, value, slow)
                assert fast == slow, (path, value)
            steps += 1
    assert steps >= 3 * (len(_ODD_VALUES) + 1)  # every field of every kind tried


def test_non_utf8_paths_and_str_headers_are_left_to_the_checked_decoder():
    wire = _wire(ALL_KINDS[1])
    wire["request"]["path"] = b"/caf\xe9"
    wire["request"]["headers"] = [["x-a", "1"]]
    payload = msgpack.packb(wire, use_bin_type=True)
    assert _fast(payload) is Unusual
    x = _slow(payload)
    assert x.request.path == "/caf\udce9"
    assert x.request.headers.raw == ((b"x-a", b"1"),)


def test_a_size_without_its_hash_is_left_to_the_checked_decoder():
    wire = _wire(ALL_KINDS[1])
    wire["response"]["body_size"] = 10
    payload = msgpack.packb(wire, use_bin_type=True)
    assert _fast(payload) is Unusual
    assert "body_sha256" in str(_slow(payload))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=_exchanges)
def test_random_exchanges_decode_alike(x):
    payload = msgpack.packb(record_to_wire(x), use_bin_type=True)
    fast = _fast(payload)
    assert fast is Unusual or fast == x
    assert _slow(payload) == x


@pytest.mark.parametrize("payload", [b"", b"\x80", b"\x81\xa4kind", b"\x81\xa4kind\xa8exch",
                                     b"\x82\xa5kinds\xa1x", b"\xde\x00\x01\xa4kind\xa4test"])
def test_peek_kind_never_reads_past_what_is_there(payload):
    peeked = peek_kind(payload)
    assert peeked is None or payload.find(peeked) > 0
