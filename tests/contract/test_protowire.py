"""The wire walker against the protobuf library itself: every message the library writes
passes, and on any bytes at all the walker calls a message clean exactly when the library
parses it strictly (no error, no field kept aside as unknown)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tapproxy.contract.grpc.schema import compile_proto, read_schema
from tapproxy.contract.grpc.wire import check_message, excerpt

DATA = Path(__file__).resolve().parent / "data" / "grpc"


@cache
def _compiled(name: str):
    """(schema, message class by full name) of a .proto under data/grpc."""
    path = DATA / name
    fds = descriptor_pb2.FileDescriptorSet.FromString(compile_proto(path))
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    schema = read_schema(path, fds, "proto")
    return schema, lambda full: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(full))


def _strictly_parsed(cls, data: bytes) -> bool:
    """The library parses `data` and keeps nothing aside as unknown, at any depth."""
    try:
        msg = cls.FromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return False
    return _no_unknown(msg)


def _no_unknown(msg: Message) -> bool:
    if len(_unknown.UnknownFieldSet(msg)):
        return False
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            values = value.values() if fd.message_type.fields_by_name["value"].message_type \
                else ()
        else:
            values = value if fd.is_repeated else (value,)
        if not all(_no_unknown(v) for v in values):
            return False
    return True


_I32, _I64 = st.integers(-2**31, 2**31 - 1), st.integers(-2**63, 2**63 - 1)
_U32, _U64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
_leaf = st.fixed_dictionaries({}, optional={"name": st.text(max_size=8), "delta": _I64})
_all = st.fixed_dictionaries({}, optional={
    "d": st.floats(), "f": st.floats(width=32), "i64": _I64, "u64": _U64, "i32": _I32,
    "fx64": _U64, "fx32": _U32, "b": st.booleans(), "s": st.text(max_size=20),
    "raw": st.binary(max_size=20), "u32": _U32, "colour": st.integers(0, 5),
    "sfx32": _I32, "sfx64": _I64, "si32": _I32, "si64": _I64,
    "packed": st.lists(_I32, max_size=4), "packed_fixed": st.lists(_U64, max_size=3),
    "unpacked": st.lists(_I32, max_size=3), "names": st.lists(st.text(max_size=5),
                                                                max_size=3),
    "leaf": _leaf, "leaves": st.lists(_leaf, max_size=2),
    "by_name": st.dictionaries(st.text(max_size=4), _leaf, max_size=2),
    "text": st.text(max_size=5), "other": _leaf})


def _build(fields: dict) -> bytes:
    _, cls = _compiled("kinds.proto")
    All, Leaf = cls("kinds.All"), cls("kinds.Leaf")
    fields = dict(fields)
    for key in ("leaf", "other"):
        if key in fields:
            fields[key] = Leaf(**fields[key])
    fields["leaves"] = [Leaf(**d) for d in fields.get("leaves", ())]
    fields["by_name"] = {k: Leaf(**d) for k, d in fields.get("by_name", {}).items()}
    return All(**fields).SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_all)
def test_every_message_the_library_writes_passes(fields):
    schema, _ = _compiled("kinds.proto")
    assert check_message(_build(fields), "kinds.All", schema) == []


@st.composite
def _damaged(draw) -> bytes:
    """A valid message with a few bytes changed, cut or inserted: near misses."""
    data = bytearray(_build(draw(_all)))
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["set", "cut", "insert"]))
        if how == "set":
            data[i] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=40), _damaged()))
@example(b"\x08\x96\x01")  # field 1 (a double) sent as a varint
@example(b"\xa2\x01\x01\xff")  # field 20 (repeated string): a byte that is no UTF-8
@example(b"\x8a\x01\x01\xff")  # packed int32 with a varint cut off
def test_clean_exactly_when_the_library_parses_strictly(data):
    schema, cls = _compiled("kinds.proto")
    ours = check_message(data, "kinds.All", schema)
    assert (ours == []) == _strictly_parsed(cls("kinds.All"), data), ours


def test_groups_and_extensions_are_declared_fields():
    schema, cls = _compiled("legacy.proto")
    Old = cls("legacy.Old")
    msg = Old(id=7)
    msg.item.add(label="a")
    data = msg.SerializeToString() + b"\xa2\x06\x02hi"  # extension 100, the string "hi"
    assert check_message(data, "legacy.Old", schema) == []
    # A group holding a field its declaration lacks, then field 2 sent as bytes.
    drifted = b"\x13\x20\x05\x14" + b"\x12\x01x"
    [unknown, wrong] = check_message(drifted, "legacy.Old", schema)
    assert (unknown.kind, unknown.where, unknown.actual) == ("grpc-unknown-field",
                                                             "field 2.4", "5")
    assert (wrong.kind, wrong.where, wrong.expected, wrong.actual) == (
        "grpc-undecodable", "field 2", "legacy.Old.Item (group)", "length-delimited (1 bytes)")


def test_a_group_that_never_ends_is_undecodable():
    schema, _ = _compiled("legacy.proto")
    [p] = check_message(b"\x08\x01\x13\x1a\x01a", "legacy.Old", schema)
    assert (p.kind, p.where, p.actual) == ("grpc-undecodable", "field 2",
                                           "not a message: group 2 never ends")


def test_the_excerpt_shows_the_lines_around_a_nested_field():
    data = _build({"i32": 1, "leaf": {"name": "x", "delta": 3}, "u32": 9, "names": ["a"]})
    lines = excerpt(data, (21, 2), 0, max_lines=3).splitlines()
    assert lines == ['  1: "x"', "  2: 6", "}"]  # sint64 3 is zigzag 6 on the wire
    assert excerpt(b"\x0a\x05ab", (1,), 0) == "bytes 0-3: 0a 05 61 62"
