"""What a protobuf descriptor set declares, as the gRPC contract checks it.

A `FileDescriptorSet` (from `protoc --descriptor_set_out`, or compiled here from `.proto`
files) becomes plain shapes: each method's message types and streaming kinds, each
message's fields by number with their declared types, and where each was declared in
its `.proto` file (when the set carries source info, `--include_source_info`).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from tapproxy.contract.model import Location
from tapproxy.errors import ContractError

__all__ = ["FieldShape", "MessageShape", "MethodShape", "Schema", "compile_proto",
           "parse_descriptor_set", "read_schema"]

_F = descriptor_pb2.FieldDescriptorProto
# Paths into FileDescriptorProto that SourceCodeInfo locations use (descriptor.proto's
# field numbers): message_type, service; DescriptorProto's field, nested_type;
# ServiceDescriptorProto's method.
_MESSAGE, _SERVICE, _FIELD, _NESTED, _METHOD = 4, 6, 2, 3, 2
_PROTOC_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<reason>.*)$")


@dataclass(frozen=True, slots=True)
class FieldShape:
    number: int
    name: str
    type: int  # FieldDescriptorProto.Type
    repeated: bool
    type_name: str  # the message, group or enum type, without the leading dot; else ""
    utf8: bool  # a string whose bytes must be UTF-8 (proto3, editions)
    location: Location


@dataclass(frozen=True, slots=True)
class MessageShape:
    name: str  # full name, e.g. taptest.Req
    fields: Mapping[int, FieldShape]
    location: Location


@dataclass(frozen=True, slots=True)
class MethodShape:
    id: str  # "taptest.Echo/Unary"
    input: str
    output: str
    client_streaming: bool
    server_streaming: bool
    location: Location

    @property
    def kind(self) -> str:
        """unary, client stream, server stream or bidi stream, as people say it."""
        return {(False, False): "unary", (True, False): "client stream",
                (False, True): "server stream", (True, True): "bidi stream"}[
            (self.client_streaming, self.server_streaming)]


@dataclass(frozen=True, slots=True)
class Schema:
    messages: Mapping[str, MessageShape]
    methods: Mapping[str, MethodShape]  # by id, in file order
    services: Mapping[str, Location]  # full service name → where it is declared


def parse_descriptor_set(raw: bytes) -> descriptor_pb2.FileDescriptorSet | None:
    """`raw` as a descriptor set protoc wrote, or None when it is not one.

    Text can parse as protobuf too (a newline is field 1's tag), so a set also has to
    describe at least one file, each named like a .proto file.
    """
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except (DecodeError, RuntimeError, ValueError):
        return None
    if not fds.file or not all(f.name.endswith(".proto") for f in fds.file):
        return None
    return fds


def _spans(fd: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], tuple[int, int]]:
    """(line, column), 1-based, of each declaration path the file's source info has."""
    return {tuple(loc.path): (loc.span[0] + 1, loc.span[1] + 1)
            for loc in fd.source_code_info.location if len(loc.span) >= 3}


def _proto_file(name: str, origin: Path, kind: str) -> Path | None:
    """Where the .proto file `name` (relative to the include path) is on disk."""
    if kind == "proto":
        return origin.parent / name
    near = origin.parent / name  # a set written beside its sources
    return near if near.exists() else Path(name)


class _Builder:
    def __init__(self, origin: Path, kind: str) -> None:
        self.origin, self.kind = origin, kind
        self.messages: dict[str, MessageShape] = {}
        self.methods: dict[str, MethodShape] = {}
        self.services: dict[str, Location] = {}
        self.extensions: list[tuple[str, FieldShape]] = []

    def add_file(self, fd: descriptor_pb2.FileDescriptorProto, services: bool) -> None:
        spans = _spans(fd)
        file = _proto_file(fd.name, self.origin, self.kind) if spans else None
        utf8 = fd.syntax in ("proto3", "editions")

        def where(path: tuple[int, ...]) -> Location:
            if file is None:  # no source info: the contract file is all there is to name
                return Location(self.origin)
            line, col = spans.get(path, (None, None))
            return Location(file, line, col)

        def add_message(m: descriptor_pb2.DescriptorProto, prefix: str,
                        path: tuple[int, ...]) -> None:
            name = f"{prefix}{m.name}"
            fields = {f.number: self._field(f, utf8, where((*path, _FIELD, i)))
                      for i, f in enumerate(m.field)}
            self.messages[name] = MessageShape(name, fields, where(path))
            for f in m.extension:
                self.extensions.append((f.extendee.lstrip("."), self._field(f, utf8,
                                                                            where(path))))
            for i, nested in enumerate(m.nested_type):
                add_message(nested, f"{name}.", (*path, _NESTED, i))

        prefix = f"{fd.package}." if fd.package else ""
        for i, m in enumerate(fd.message_type):
            add_message(m, prefix, (_MESSAGE, i))
        for f in fd.extension:
            self.extensions.append((f.extendee.lstrip("."), self._field(f, utf8,
                                                                        where(()))))
        for si, s in enumerate(fd.service if services else ()):
            service = f"{prefix}{s.name}"
            self.services[service] = where((_SERVICE, si))
            for mi, m in enumerate(s.method):
                mid = f"{service}/{m.name}"
                self.methods[mid] = MethodShape(
                    mid, m.input_type.lstrip("."), m.output_type.lstrip("."),
                    m.client_streaming, m.server_streaming, where((_SERVICE, si, _METHOD, mi)))

    @staticmethod
    def _field(f: descriptor_pb2.FieldDescriptorProto, utf8: bool,
               location: Location) -> FieldShape:
        return FieldShape(f.number, f.name, f.type, f.label == _F.LABEL_REPEATED,
                          f.type_name.lstrip("."), utf8 and f.type == _F.TYPE_STRING,
                          location)

    def schema(self) -> Schema:
        for extendee, field in self.extensions:  # proto2 extensions are declared fields too
            m = self.messages.get(extendee)
            if m is not None:
                self.messages[extendee] = MessageShape(
                    m.name, {**m.fields, field.number: field}, m.location)
        return Schema(self.messages, self.methods, self.services)


def read_schema(path: Path, fds: descriptor_pb2.FileDescriptorSet, kind: str) -> Schema:
    """The shapes of a descriptor set read from `path` (`kind`: "descriptor" | "proto")."""
    pool = descriptor_pool.DescriptorPool()
    try:  # the protobuf library checks what the set refers to: imports, type names
        for f in fds.file:
            pool.Add(f)
        for f in fds.file:
            pool.FindFileByName(f.name)
    except (TypeError, KeyError, ValueError) as e:
        hint = " (build it with protoc --include_imports)" if kind == "descriptor" else ""
        raise ContractError(f"{path}: not a usable descriptor set: {e}{hint}") from None
    builder = _Builder(path, kind)
    for f in fds.file:
        # A .proto names its own services; its imports lend it types (their services are
        # theirs: the user names that file to check them). A set is one whole contract.
        builder.add_file(f, kind != "proto" or f.name == path.name)
    schema = builder.schema()
    if not schema.methods:
        raise ContractError(f"{path}: declares no gRPC service method (no `service` with an "
                            "`rpc`)")
    return schema


def _protoc(path: Path) -> list[str]:
    if importlib.util.find_spec("grpc_tools") is not None:
        # Run as a module: it adds the well-known types (google/protobuf/*.proto) to the
        # include path, and protoc's errors go to a stderr we can read.
        return [sys.executable, "-m", "grpc_tools.protoc"]
    found = shutil.which("protoc")
    if found is None:
        raise ContractError(f"{path}: compiling .proto files needs grpcio-tools (pip install "
                            "grpcio-tools) or protoc on PATH; or give a descriptor set "
                            "(protoc --descriptor_set_out)")
    return [found]


def _protoc_error(path: Path, stderr: str) -> ContractError:
    """protoc's first positioned error, with the file named as the user named it."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    absolute = str(path.resolve())
    for ln in lines:
        m = _PROTOC_LINE.match(ln)
        if m:
            file = Path(m["file"])  # protoc names files by the absolute include path
            if file.is_relative_to(path.resolve().parent):
                file = path.parent / file.relative_to(path.resolve().parent)
            return ContractError(f"{file}:{m['line']}:{m['col']}: {m['reason']}")
    reason = lines[0] if lines else "protoc failed without saying why"
    return ContractError(f"{path}: {reason.replace(absolute, str(path))}")


def compile_proto(path: Path) -> bytes:
    """`path` compiled by protoc into a descriptor set with its imports and source info;
    its own directory is the include path."""
    source = path.resolve()
    with tempfile.TemporaryDirectory(prefix="tapproxy-proto-") as tmp:
        out = Path(tmp) / "contract.desc"
        cmd = [*_protoc(path), f"-I{source.parent}", "--include_imports",
               "--include_source_info", f"--descriptor_set_out={out}", str(source)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ContractError(f"{path}: protoc could not run: {e}") from None
        if done.returncode != 0:
            raise _protoc_error(path, done.stderr)
        return out.read_bytes()
