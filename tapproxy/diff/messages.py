"""gRPC messages as JSON-like trees, so that they diff field by field as JSON does.

Without a schema the keys are field numbers (as `protoc --decode_raw` shows them); with
a descriptor set (`--proto-descriptor`), field names. Pure: no I/O.
"""

from __future__ import annotations

from google.protobuf import empty_pb2
from google.protobuf import unknown_fields as _unknown
from google.protobuf.message import DecodeError

from tapproxy.capture.encoding import decode_body
from tapproxy.capture.model import Exchange, GrpcMessage
from tapproxy.capture.protobuf import ProtoSchema
from tapproxy.errors import CaptureError

__all__ = ["message_trees"]

_MAX_DEPTH = 32


def _fields(data: bytes):
    try:
        return list(_unknown.UnknownFieldSet(empty_pb2.Empty.FromString(data)))
    except (DecodeError, RuntimeError, ValueError):
        return None


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\n\t" for c in text) else None


def _tree(fields, depth: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in fields:
        n, wire, data = str(f.field_number), f.wire_type, f.data
        if wire == 2:
            value: object = _printable(data)
            if value is None:
                nested = _fields(data) if depth < _MAX_DEPTH else None
                value = _tree(nested, depth + 1) if nested else "bytes:" + data.hex()
        elif wire == 3:  # a group: its fields come parsed already
            value = _tree(data, depth + 1)
        else:
            value = data
        if n in out:  # a repeated field: its values in order
            prev = out[n]
            out[n] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[n] = value
    return out


def _raw_tree(data: bytes) -> object:
    fields = _fields(data)
    return _tree(fields, 0) if fields is not None else "bytes:" + data.hex()


def _decompressed(m: GrpcMessage, encoding: str | None) -> bytes | None:
    if not m.compressed:
        return m.data
    try:
        return decode_body(m.data, encoding)
    except CaptureError:
        return None


def message_trees(x: Exchange, from_client: bool,
                  schema: ProtoSchema | None = None) -> list[object]:
    """The messages of one direction of a gRPC call, each as a tree (by field name where
    `schema` describes the method, else by number); one that cannot be read is its bytes."""
    headers = x.request.headers if from_client else (
        x.response.headers if x.response is not None else None)
    encoding = headers.get("grpc-encoding") if headers is not None else None
    method = x.grpc_method
    out: list[object] = []
    for m in x.grpc_messages:
        if m.from_client != from_client:
            continue
        data = _decompressed(m, encoding)
        if data is None:
            out.append("compressed:" + m.data.hex())
            continue
        tree = None
        if schema is not None and method is not None:
            tree = schema.message_dict(*method, from_client, data)
        out.append(tree if tree is not None else _raw_tree(data))
    return out
