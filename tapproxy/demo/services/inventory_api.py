"""inventory.Inventory/Reserve as protobuf classes built from a descriptor at import, so
the demo needs no generated code (and no protoc); inventory.proto beside it says the same."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["METHOD", "SERVICE", "ReserveReply", "ReserveRequest"]

SERVICE = "inventory.Inventory"
METHOD = f"/{SERVICE}/Reserve"

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="inventory.proto", package="inventory",
                                           syntax="proto3")
    req = f.message_type.add(name="ReserveRequest")
    req.field.add(name="sku", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    req.field.add(name="qty", number=2, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    reply = f.message_type.add(name="ReserveReply")
    reply.field.add(name="reserved", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    reply.field.add(name="left", number=2, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    f.service.add(name="Inventory").method.add(
        name="Reserve", input_type=".inventory.ReserveRequest",
        output_type=".inventory.ReserveReply")
    return f


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
ReserveRequest = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("inventory.ReserveRequest"))
ReserveReply = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("inventory.ReserveReply"))
