"""gRPC contracts: a descriptor set or `.proto` files, checked against recorded calls.

Each recorded call's method must be declared; each of its messages must be the method's
declared input or output type, field by field on the wire (`protowire`); and a method
declared unary on a side must carry one message there, not a stream. Which gRPC status
a method may answer with is the own expectation format's to say, not a .proto's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tapproxy.capture.grpc import iter_messages
from tapproxy.capture.model import Exchange, GrpcMessage
from tapproxy.contract.grpc.schema import (
    MethodShape,
    Schema,
    compile_proto,
    parse_descriptor_set,
    read_schema,
)
from tapproxy.contract.grpc.wire import WireProblem, check_message, excerpt
from tapproxy.contract.model import ContractItem, Hit, Location, Mismatch, Verdict
from tapproxy.errors import ContractError

__all__ = ["GrpcContract", "load"]

# gRPC's "gzip" is the gzip format, its "deflate" the zlib format (RFC 1950).
_CODECS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_MAX_INFLATED = 64 << 20  # a message inflating past this is a bomb, not a message


def load(path: Path, raw: bytes, *, kind: str, service: str | None) -> GrpcContract:
    """A gRPC contract from a descriptor set (`kind` "descriptor") or a .proto ("proto")."""
    if kind == "proto":
        raw = compile_proto(path)
    fds = parse_descriptor_set(raw)
    if fds is None:
        raise ContractError(f"{path}: not a protobuf descriptor set "
                            "(protoc --descriptor_set_out=FILE)")
    return GrpcContract(path, read_schema(path, fds, kind), service)


def _inflate(data: bytes, codec: str) -> bytes:
    d = zlib.decompressobj(_CODECS[codec])
    out = d.decompress(data, _MAX_INFLATED)
    if d.unconsumed_tail:
        raise ValueError(f"inflates past {_MAX_INFLATED >> 20} MiB")
    if not d.eof:
        raise ValueError("cut off")
    return out


def _messages(x: Exchange) -> Iterator[GrpcMessage]:
    """Both directions' messages: as recorded, else cut from the bodies (an import)."""
    if x.grpc_messages:
        yield from x.grpc_messages
        return
    for compressed, data in iter_messages(x.request.body):
        yield GrpcMessage(True, compressed, x.timing.request_start, data)
    if x.response is not None:
        for compressed, data in iter_messages(x.response.body):
            yield GrpcMessage(False, compressed, x.timing.request_start, data)


class GrpcContract:
    """Methods and message types from protobuf descriptors; see the module docstring."""

    kind = "grpc"
    per_test = False  # a .proto says nothing of how often or in which order

    def __init__(self, path: Path, schema: Schema, service: str | None) -> None:
        self.path, self.schema, self.service = path, schema, service
        self._items = [ContractItem(m.id, f"{m.id} ({m.kind})", m.location, callee=service)
                       for m in schema.methods.values()]

    def items(self) -> Sequence[ContractItem]:
        return self._items

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        return ()

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        return ()

    def check(self, x: Exchange) -> Verdict | None:
        if not x.is_grpc:
            return None
        if self.service is not None and x.callee.name != self.service:
            return None
        called = x.grpc_method
        service = called[0] if called else None
        if self.service is None and service not in self.schema.services:
            return None  # another service's call: this contract does not know it
        method = self.schema.methods.get("/".join(called)) if called else None
        if method is None:
            return Verdict(None, (self._unknown_method(x, service),))
        return Verdict(method.id, tuple(self._check_messages(x, method)))

    def _mismatch(self, x: Exchange, kind: str, message: str, contract: Location,
                  item: str | None, **kw) -> Mismatch:
        return Mismatch(kind, message, contract, item, exchange_id=x.id, test=x.test,
                        caller=x.caller.name, callee=x.callee.name, **kw)

    def _unknown_method(self, x: Exchange, service: str | None) -> Mismatch:
        path = x.request.path_only
        if service in self.schema.services:
            names = [m.id.rpartition("/")[2] for m in self.schema.methods.values()
                     if m.id.startswith(f"{service}/")]
            expected = f"one of {', '.join(names)}"
            where = self.schema.services[service]
            message = f"{path}: {service} declares no such method"
        else:
            expected = "a method of " + ", ".join(self.schema.services)
            where = Location(self.path)
            message = f"{path}: no service of this contract"
        return self._mismatch(x, "grpc-unknown-method", message, where, None,
                              side="request", expected=_short(expected), actual=path)

    def _check_messages(self, x: Exchange, method: MethodShape) -> Iterator[Mismatch]:
        sides = {True: [], False: []}
        for m in _messages(x):
            sides[m.from_client].append(m)
        for from_client, streaming, type_name in (
                (True, method.client_streaming, method.input),
                (False, method.server_streaming, method.output)):
            side = "request" if from_client else "response"
            sent = sides[from_client]
            if not streaming and len(sent) > 1:
                yield self._mismatch(
                    x, "grpc-streaming", f"{len(sent)} {side} messages: {method.id} is "
                    f"declared {method.kind}", method.location, method.id, side=side,
                    expected=f"one {side} message ({method.kind})",
                    actual=f"{len(sent)} messages")
            headers = x.request.headers if from_client else (
                x.response.headers if x.response is not None else None)
            codec = (headers.get("grpc-encoding") if headers is not None else None) or ""
            for n, m in enumerate(sent, 1):
                yield from self._check_one(x, method, side, n, m, codec.strip().lower(),
                                           type_name)

    def _check_one(self, x: Exchange, method: MethodShape, side: str, n: int,
                   m: GrpcMessage, codec: str, type_name: str) -> Iterator[Mismatch]:
        label = f"{side} message {n}"
        data = m.data
        if m.compressed:
            if codec not in _CODECS:
                # Not passed silently: a message nobody here can read is not a checked one.
                yield self._mismatch(
                    x, "grpc-undecodable", f"{label}: not checked, compressed with "
                    f"{codec or 'no grpc-encoding named'}", method.location, method.id,
                    side=side, expected="gzip, deflate or identity",
                    actual=codec or "no grpc-encoding")
                return
            try:
                data = _inflate(data, codec)
            except (zlib.error, ValueError) as e:
                yield self._mismatch(
                    x, "grpc-undecodable", f"{label}: not valid {codec}: {e}",
                    method.location, method.id, side=side, expected=f"{codec} data",
                    actual=str(e))
                return
        for p in check_message(data, type_name, self.schema):
            yield self._problem(x, method, side, f"{label} ({type_name})", data, p)

    def _problem(self, x: Exchange, method: MethodShape, side: str, label: str,
                 data: bytes, p: WireProblem) -> Mismatch:
        names = ".".join(p.names)  # an unknown field's: those of the message it is in
        if p.kind == "grpc-unknown-field":
            at = f"{p.where} (in {names})" if names else p.where
            text = f"{label}, {at}: {p.message.name} declares no field {p.path[-1]}"
        else:
            at = f"{p.where} ({names})" if names else p.where or f"byte {p.offset}"
            text = f"{label}, {at}: expected {p.expected}, got {p.actual}"
        where = p.field.location if p.field is not None else p.message.location
        if where.line is None:
            where = method.location
        return self._mismatch(x, p.kind, text, where, method.id, where=p.where, side=side,
                              expected=_short(p.expected), actual=_short(p.actual),
                              excerpt=excerpt(data, p.path, p.offset))


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
