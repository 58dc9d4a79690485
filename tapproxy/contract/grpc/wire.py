"""A protobuf message's bytes walked field by field against its declared type.

The protobuf library's parser is lenient on purpose: a field it does not know is kept
aside, and a field whose wire type disagrees with its declaration is treated as unknown
too, so a message that drifted still parses. A contract check needs the opposite: every
field number declared, every wire type as declared, every nested message the same. This
walker reads the wire format itself (https://protobuf.dev/programming-guides/encoding/)
and says where each difference is, as a path of field numbers ("3.1": field 1 of the
message in field 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from tapproxy.capture.protobuf import decode_raw
from tapproxy.contract.grpc.schema import FieldShape, MessageShape, Schema

__all__ = ["WireProblem", "check_message", "excerpt"]

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {_VARINT: "varint", _I64: "64-bit", _LEN: "length-delimited",
               _SGROUP: "group", _I32: "32-bit"}
# FieldDescriptorProto.Type → (name, the wire type it is encoded with)
_TYPES = {1: ("double", _I64), 2: ("float", _I32), 3: ("int64", _VARINT),
          4: ("uint64", _VARINT), 5: ("int32", _VARINT), 6: ("fixed64", _I64),
          7: ("fixed32", _I32), 8: ("bool", _VARINT), 9: ("string", _LEN),
          10: ("group", _SGROUP), 11: ("message", _LEN), 12: ("bytes", _LEN),
          13: ("uint32", _VARINT), 14: ("enum", _VARINT), 15: ("sfixed32", _I32),
          16: ("sfixed64", _I64), 17: ("sint32", _VARINT), 18: ("sint64", _VARINT)}
_GROUP, _MESSAGE_TYPE = 10, 11
_MAX_DEPTH = 100  # the protobuf runtimes' own recursion limit
_MAX_PROBLEMS = 20  # per message: a wholly different message says enough by then


@dataclass(frozen=True, slots=True)
class WireProblem:
    """One field of a message that is not as declared."""

    kind: str  # "grpc-undecodable" | "grpc-unknown-field"
    path: tuple[int, ...]  # field numbers from the top message down; () for the whole
    names: tuple[str, ...]  # the declared names along `path`, as far as they are known
    expected: str
    actual: str
    offset: int  # where the field (or the damage) starts in the message's bytes
    message: MessageShape  # the type `path`'s last field belongs to
    field: FieldShape | None = None  # its declaration, when it has one

    @property
    def where(self) -> str:
        return f"field {'.'.join(map(str, self.path))}" if self.path else ""


class _Malformed(Exception):
    """The bytes are not the protobuf wire format at `offset`."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset, self.reason = offset, reason
        # The innermost group it broke in: where a broken group ends is unknowable, so
        # the whole message is undecodable, but this is the place to point at.
        self.path: tuple[int, ...] = ()
        self.names: tuple[str, ...] = ()
        self.field: FieldShape | None = None


def _type_name(field: FieldShape) -> str:
    name, wire = _TYPES.get(field.type, (f"type {field.type}", None))
    if field.type_name and field.type != 14:
        name = field.type_name
    elif field.type == 14:
        name = f"enum {field.type_name}"
    return f"{name} ({_WIRE_NAMES.get(wire, '?')})"


class _Walk:
    def __init__(self, data: bytes, schema: Schema) -> None:
        self.data, self.schema = data, schema
        self.problems: list[WireProblem] = []

    def varint(self, i: int, end: int) -> tuple[int, int]:
        value = shift = 0
        start = i
        while True:
            if i >= end:
                raise _Malformed(start, f"a varint cut off at byte {i}")
            b = self.data[i]
            i += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value, i
            shift += 7
            if shift >= 70:
                raise _Malformed(start, f"a varint longer than 10 bytes at byte {start}")

    def skip(self, i: int, end: int, wire: int, number: int, depth: int) -> int:
        """The end of a value of `wire` type starting at `i` (a group: past its end tag)."""
        if wire == _VARINT:
            return self.varint(i, end)[1]
        if wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if i + size > end:
                raise _Malformed(i, f"field {number} cut off at byte {end}")
            return i + size
        if wire == _LEN:
            n, p = self.varint(i, end)
            if p + n > end:
                raise _Malformed(i, f"field {number} says {n} bytes, {end - p} are left")
            return p + n
        return self.group(i, end, None, number, (), (), depth + 1)

    def group(self, i: int, end: int, shape: MessageShape | None, number: int,
              path: tuple[int, ...], names: tuple[str, ...], depth: int) -> int:
        """Walk a group's fields (or only skip them, when `shape` is None)."""
        if depth > _MAX_DEPTH:
            raise _Malformed(i, f"nested more than {_MAX_DEPTH} deep")
        while i < end:
            at = i
            key, i = self.varint(i, end)
            n, wire = key >> 3, key & 7
            if wire == _EGROUP:
                if n == number:
                    return i
                raise _Malformed(at, f"the end of group {n}, never started, at byte {at}")
            i = self.field(at, i, end, n, wire, shape, path, names, depth) if shape \
                else self.skip_checked(at, i, end, n, wire, depth)
        raise _Malformed(end, f"group {number} never ends")

    def skip_checked(self, at: int, i: int, end: int, n: int, wire: int, depth: int) -> int:
        if n == 0 or wire > _I32:
            raise _Malformed(at, f"no valid field tag at byte {at}")
        return self.skip(i, end, wire, n, depth)

    def message(self, i: int, end: int, shape: MessageShape, path: tuple[int, ...],
                names: tuple[str, ...], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Malformed(i, f"nested more than {_MAX_DEPTH} deep")
        while i < end:
            at = i
            key, i = self.varint(i, end)
            n, wire = key >> 3, key & 7
            if wire == _EGROUP:
                raise _Malformed(at, f"the end of group {n}, never started, at byte {at}")
            i = self.field(at, i, end, n, wire, shape, path, names, depth)

    def field(self, at: int, i: int, end: int, n: int, wire: int, shape: MessageShape,
              path: tuple[int, ...], names: tuple[str, ...], depth: int) -> int:
        """Check one field whose tag starts at `at` and value at `i`; its value's end."""
        if n == 0 or wire > _I32:
            raise _Malformed(at, f"no valid field tag at byte {at}")
        declared = shape.fields.get(n)
        fpath = (*path, n)
        if declared is None:
            value_end = self.skip(i, end, wire, n, depth)
            self.add("grpc-unknown-field", fpath, names, f"no field {n} in {shape.name}",
                     self.show(wire, i, value_end), at, shape)
            return value_end
        fnames = (*names, declared.name)
        _, declared_wire = _TYPES.get(declared.type, ("", None))
        if wire == _SGROUP and declared.type == _GROUP:
            inner = self.schema.messages.get(declared.type_name)
            return self.nested(lambda: self.group(i, end, inner, n, fpath, fnames, depth + 1),
                               at, fpath, fnames, shape, declared)
        value_end = self.skip(i, end, wire, n, depth)
        if wire == declared_wire:
            if declared.type == _MESSAGE_TYPE:
                inner = self.schema.messages.get(declared.type_name)
                start = self.varint(i, end)[1]
                if inner is not None:
                    self.nested(lambda: self.message(start, value_end, inner, fpath, fnames,
                                                     depth + 1), at, fpath, fnames, shape,
                                declared)
            elif declared.utf8:
                start = self.varint(i, end)[1]
                try:
                    self.data[start:value_end].decode("utf-8")
                except UnicodeDecodeError as e:
                    self.add("grpc-undecodable", fpath, fnames, _type_name(declared),
                             f"not UTF-8 (byte {start + e.start})", at, shape, declared)
            return value_end
        if wire == _LEN and declared.repeated and declared_wire in (_VARINT, _I64, _I32):
            self.packed(i, value_end, declared_wire, at, fpath, fnames, shape, declared)
            return value_end
        self.add("grpc-undecodable", fpath, fnames, _type_name(declared),
                 _WIRE_NAMES[wire] + self.detail(wire, i, value_end), at, shape, declared)
        return value_end

    def nested(self, walk, at: int, path: tuple[int, ...], names: tuple[str, ...],
               shape: MessageShape, declared: FieldShape) -> int:
        """Run `walk` over a nested message; bytes that are not one are one problem here."""
        try:
            return walk()
        except _Malformed as e:
            if declared.type == _GROUP:
                if not e.path:
                    e.path, e.names, e.field = path, names, declared
                raise
            self.add("grpc-undecodable", path, names, _type_name(declared),
                     f"not a message: {e.reason}", at, shape, declared)
            return 0

    def packed(self, i: int, end: int, wire: int, at: int, path: tuple[int, ...],
               names: tuple[str, ...], shape: MessageShape, declared: FieldShape) -> None:
        start = self.varint(i, end)[1]
        size = end - start
        if wire == _VARINT:
            try:
                p = start
                while p < end:
                    p = self.varint(p, end)[1]
                return
            except _Malformed as e:
                actual = f"packed, {e.reason}"
        elif size % (8 if wire == _I64 else 4) == 0:
            return
        else:
            actual = f"packed, {size} bytes (not a multiple of {8 if wire == _I64 else 4})"
        self.add("grpc-undecodable", path, names, _type_name(declared), actual, at, shape,
                 declared)

    def detail(self, wire: int, i: int, end: int) -> str:
        if wire == _LEN:
            return f" ({end - self.varint(i, end)[1]} bytes)"
        return f" ({self.show(wire, i, end)})" if wire != _SGROUP else ""

    def show(self, wire: int, i: int, end: int) -> str:
        """A short rendering of a value, as a report shows it."""
        if wire == _VARINT:
            return str(self.varint(i, end)[0])
        if wire in (_I64, _I32):
            return "0x" + self.data[i:end][::-1].hex()
        if wire == _SGROUP:
            return "a group"
        payload = self.data[self.varint(i, end)[1]:end]
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.isprintable() and len(text) <= 30:
            return '"' + text.replace('"', '\\"') + '"'
        return f"{len(payload)} bytes"

    def add(self, kind: str, path: tuple[int, ...], names: tuple[str, ...], expected: str,
            actual: str, offset: int, shape: MessageShape,
            declared: FieldShape | None = None) -> None:
        if len(self.problems) >= _MAX_PROBLEMS:
            raise _Enough
        self.problems.append(WireProblem(kind, path, names, expected, actual, offset, shape,
                                         declared))


class _Enough(Exception):
    """The problem limit of one message was reached: stop walking it."""


def check_message(data: bytes, type_name: str, schema: Schema) -> list[WireProblem]:
    """Every way `data` differs from message type `type_name` (at most 20)."""
    shape = schema.messages[type_name]
    walk = _Walk(data, schema)
    try:
        walk.message(0, len(data), shape, (), (), 0)
    except _Malformed as e:
        expected = _type_name(e.field) if e.field else f"a {shape.name}"
        walk.problems.append(WireProblem("grpc-undecodable", e.path, e.names, expected,
                                         f"not a message: {e.reason}", e.offset, shape,
                                         e.field))
    except _Enough:
        pass
    return walk.problems


def excerpt(data: bytes, path: tuple[int, ...], offset: int, max_lines: int = 5) -> str:
    """A few lines of the message around `path`, as `protoc --decode_raw` shows it; the
    bytes around `offset` in hex when it is not a message at all."""
    rendered = decode_raw(data) if data else None
    if rendered is None:
        start = max(0, offset - 8)
        chunk = data[start:start + 24]
        return f"bytes {start}-{start + len(chunk) - 1}: {chunk.hex(' ')}" if chunk else ""
    lines = rendered.splitlines()
    target = next((i for i, p in enumerate(_line_paths(lines)) if p == path), 0)
    first = max(0, min(target - max_lines // 2, len(lines) - max_lines))
    return "\n".join(ln if len(ln) <= 76 else ln[:73] + "..."
                     for ln in lines[first:first + max_lines])


def _line_paths(lines: list[str]) -> list[tuple[int, ...]]:
    """The field-number path each line of a decode_raw rendering shows."""
    stack: list[int] = []
    out: list[tuple[int, ...]] = []
    for ln in lines:
        depth = (len(ln) - len(ln.lstrip(" "))) // 2
        head = ln.strip()
        del stack[depth:]
        number = head.split(":", 1)[0].split(" ", 1)[0]
        if not number.isdigit():  # a closing brace
            out.append(())
            continue
        out.append((*stack, int(number)))
        if head.endswith("{"):
            stack.append(int(number))
    return out
