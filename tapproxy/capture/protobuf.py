"""Decoded views of protobuf payloads (gRPC messages) for people to read.

Without a schema, like `protoc --decode_raw`: field numbers and wire types, a
length-delimited field shown as a string when it is printable UTF-8, else as a nested
message when it parses as one, else as an escaped string. With a `protoc
--descriptor_set_out` file, by name. Parsing is the protobuf library's (upb, already
installed for opentelemetry-proto); only the printing is ours.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2, message_factory, text_format
from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError

from tapproxy.errors import UsageError

__all__ = ["ProtoSchema", "decode_raw"]

_MAX_DEPTH = 32
# A descriptor set of every Google API is ~10 MiB; more is not one (or never ends).
_MAX_SIZE = 64 << 20


def _fields(data: bytes):
    """The fields of `data` as a message nobody knows, or None if it is not one."""
    try:
        msg = empty_pb2.Empty.FromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return None
    fields = list(_unknown.UnknownFieldSet(msg))
    return fields if fields or not data else None


def _quote(b: bytes) -> str:
    """A string as protoc prints it: printable ASCII as is, the rest as octal escapes."""
    out = []
    for c in b:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}.get(c, f"\\{c:03o}"))
    return '"' + "".join(out) + '"'


def _is_text(b: bytes) -> bool:
    """Printable UTF-8: shown as a string even where it would also parse as a message
    (protoc --decode_raw shows "hi" as `{ 13: 105 }`)."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\t" for ch in text)


def _render(fields, indent: int, lines: list[str], depth: int) -> None:
    pad = "  " * indent
    for f in fields:
        n, wire, data = f.field_number, f.wire_type, f.data
        if wire == 0:
            lines.append(f"{pad}{n}: {data}")
        elif wire in (1, 5):
            lines.append(f"{pad}{n}: 0x{data:0{16 if wire == 1 else 8}x}")
        elif wire == 2:
            nested = None
            if data and depth < _MAX_DEPTH and not _is_text(data):
                nested = _fields(data)
            if nested:
                lines.append(f"{pad}{n} {{")
                _render(nested, indent + 1, lines, depth + 1)
                lines.append(pad + "}")
            elif _is_text(data):
                text = data.decode("utf-8")
                for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\t", "\\t")):
                    text = text.replace(a, b)
                lines.append(f'{pad}{n}: "{text}"')
            else:
                lines.append(f"{pad}{n}: {_quote(data)}")
        elif wire == 3:  # a group: its fields come parsed already
            lines.append(f"{pad}{n} {{")
            _render(data, indent + 1, lines, depth + 1)
            lines.append(pad + "}")


def decode_raw(data: bytes) -> str | None:
    """`data` as `protoc --decode_raw` prints it; None if it is not a protobuf message."""
    fields = _fields(data)
    if fields is None:
        return None
    lines: list[str] = []
    _render(fields, 0, lines, 0)
    return "\n".join(lines)


class ProtoSchema:
    """Message types of gRPC methods, from a `protoc --descriptor_set_out` file."""

    def __init__(self, path: Path) -> None:
        what = f"{path}: not a protobuf descriptor set (protoc --descriptor_set_out=FILE)"
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_SIZE + 1)  # never all of /dev/zero or a named pipe
            if len(data) > _MAX_SIZE:
                raise UsageError(f"{path}: more than {_MAX_SIZE >> 20} MiB, "
                                 + what.partition(": ")[2])
            files = descriptor_pb2.FileDescriptorSet.FromString(data).file
        except OSError as e:
            raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None
        except DecodeError:
            raise UsageError(what) from None
        if not files:
            raise UsageError(f"{what}: it describes no .proto file")
        self._pool = descriptor_pool.DescriptorPool()
        try:
            for f in files:
                self._pool.Add(f)
        except (TypeError, KeyError, ValueError) as e:
            # e.g. an import that is not in the set: protoc needs --include_imports
            raise UsageError(f"{path}: {e} (build it with --include_imports)") from None

    def _method(self, service: str, method: str):
        try:
            return self._pool.FindServiceByName(service).FindMethodByName(method)
        except KeyError:
            return None

    def describes(self, service: str, method: str) -> bool:
        """Whether the set describes this method (else its messages go by field number)."""
        return self._method(service, method) is not None

    def decode(self, service: str, method: str, from_client: bool, data: bytes) -> str | None:
        """The message in text format by field name; None if the method is not described
        or the bytes are not its message."""
        m = self._method(service, method)
        if m is None:
            return None
        cls = message_factory.GetMessageClass(m.input_type if from_client else m.output_type)
        try:
            msg = cls.FromString(data)
        except (DecodeError, RuntimeError, ValueError):
            return None
        return text_format.MessageToString(msg, print_unknown_fields=True).rstrip("\n")

    def message_dict(self, service: str, method: str, from_client: bool,
                     data: bytes) -> dict | None:
        """The message as a dict by field name (proto field names, JSON mapping); None
        if the method is not described or the bytes are not its message."""
        from google.protobuf import json_format

        m = self._method(service, method)
        if m is None:
            return None
        cls = message_factory.GetMessageClass(m.input_type if from_client else m.output_type)
        try:
            msg = cls.FromString(data)
        except (DecodeError, RuntimeError, ValueError):
            return None
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)
