"""Attributes, names and statuses of gRPC spans per the OpenTelemetry RPC conventions.

https://opentelemetry.io/docs/specs/semconv/rpc/grpc/ (RPC conventions from v1.38 on,
stable from v1.45): `rpc.system.name` "grpc", `rpc.method` fully qualified
(`package.Service/Method`, which also names the span), `rpc.response.status_code` as the
status name. A client span is an error for every status but OK; a server span only for
the statuses that mean the server failed. A transport failure before any status is an
error whose `error.type` names it.
"""

from __future__ import annotations

from tapproxy.capture.model import Exchange

__all__ = ["rpc_attributes", "rpc_status"]

_SERVER_ERRORS = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                  "DATA_LOSS"}


def _is_error(code: str, kind: str) -> bool:
    return code != "OK" if kind == "client" else code in _SERVER_ERRORS


def rpc_status(x: Exchange, kind: str) -> tuple[str, str] | None:
    """("error", description) or ("unset", "") from grpc-status; None if there is none."""
    code = x.grpc_status_name
    if code is None:
        return None
    if _is_error(code, kind):
        return "error", x.grpc_message or ""
    return "unset", ""


def rpc_attributes(x: Exchange, kind: str) -> tuple[str, dict[str, object]] | None:
    """(span name, attributes) of a gRPC call's span; None if `x` is not one."""
    method = x.grpc_method
    if method is None:
        return None
    name = "/".join(method)
    attrs: dict[str, object] = {
        "rpc.system.name": "grpc",
        "rpc.method": name,
        "server.address": x.request.host,
        "server.port": x.request.port,
        "network.protocol.name": "http",
    }
    code = x.grpc_status_name
    if code is not None:
        attrs["rpc.response.status_code"] = code
        if _is_error(code, kind):
            attrs["error.type"] = code
    elif x.error is not None:
        attrs["error.type"] = x.error.kind
    if kind == "server" and x.caller.address:
        attrs["client.address"] = x.caller.address.rpartition(":")[0].strip("[]")
    return name, attrs
