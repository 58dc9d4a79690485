"""Attributes, names and statuses of HTTP spans per the stable OpenTelemetry conventions.

https://opentelemetry.io/docs/specs/semconv/http/http-spans/ : client spans are errors
for 4xx and 5xx, server spans for 5xx only; a transport failure is an error with
`error.type` naming it.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from tapproxy.capture.credentials import mask_path_params, mask_query, name_test
from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import Exchange
from tapproxy.errors import CaptureError
from tapproxy.spans.rpc import rpc_attributes, rpc_status

__all__ = ["client_attributes", "server_attributes", "server_saw_request", "span_status"]

_METHODS = {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
            "QUERY"}
# Query parameters the conventions ask to redact in url.full / url.query.
_SECRET_QUERY = {"awsaccesskeyid", "signature", "sig", "x-goog-signature"}
_BODY_LIMIT = 8192
_REDACTED = "REDACTED"
# Beyond the conventions' list: the same credential-like names the recorder masks.
_is_credential = name_test()

# A callee never saw a request whose connection failed: no server span for these.
_NO_SERVER = {"refused", "dns", "tls"}


def server_saw_request(x: Exchange) -> bool:
    return x.error is None or x.error.kind not in _NO_SERVER or x.response is not None


def _method(x: Exchange, attrs: dict) -> str:
    m = x.request.method
    if m in _METHODS:  # a known method, in upper case as the conventions require
        attrs["http.request.method"] = m
        return m
    attrs["http.request.method"] = "_OTHER"
    attrs["http.request.method_original"] = m
    return "HTTP"


@lru_cache(maxsize=64)  # pure, and a capture holds a handful of versions
def _protocol_version(v: str) -> str | None:
    v = v.upper().removeprefix("HTTP/")
    return {"2.0": "2", "3.0": "3"}.get(v, v) or None


def _is_secret_param(name: str) -> bool:
    return name.lower() in _SECRET_QUERY or _is_credential(name)


@lru_cache(maxsize=4096)  # pure, and most calls repeat the same few URLs
def _redact_query(query: str) -> str:
    """Only the values of secret parameters change; the rest stays exactly as sent."""
    return mask_query(query, _is_secret_param, _REDACTED)[0]


@lru_cache(maxsize=4096)  # pure, and most calls repeat the same few URLs
def _redact_path(path: str) -> str:
    """Session ids in path parameters (`/cart;jsessionid=…`) are replaced, like queries'."""
    return mask_path_params(path, _is_secret_param, _REDACTED)[0]


@lru_cache(maxsize=4096)  # pure, and most calls repeat the same few URLs
def _redact_url(url: str) -> str:
    """Credentials in the URL are replaced, never exported."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a recorded host urlsplit rejects (an unbalanced "["): keep the URL
        base, mark, query = url.partition("?")
        return _redact_path(base) + mark + _redact_query(query)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED}:{_REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=_redact_path(parts.path),
                                     query=_redact_query(parts.query)))


def _error_type(x: Exchange, threshold: int) -> str | None:
    error, response = x.error, x.response
    if error is not None and response is None:
        return error.kind
    if response is not None and response.status >= threshold:
        return str(response.status)
    return error.kind if error is not None else None


def span_status(x: Exchange, kind: str, grpc: bool = True) -> tuple[str, str]:
    """("error", message) or ("unset", ""): client 4xx/5xx, server 5xx, transport errors;
    for gRPC, the grpc-status (see `spans.rpc`)."""
    threshold = 400 if kind == "client" else 500
    if grpc and (rpc := rpc_status(x, kind)) is not None:
        return rpc
    if x.error is not None:
        return "error", f"{x.error.kind}: {x.error.message}"
    if x.response is not None and x.response.status >= threshold:
        return "error", ""  # the status code says it; the conventions leave the message out
    return "unset", ""


def _common(x: Exchange, attrs: dict, threshold: int, bodies: bool) -> None:
    if x.response is not None:
        attrs["http.response.status_code"] = x.response.status
    if (et := _error_type(x, threshold)) is not None:
        attrs["error.type"] = et
    if (pv := _protocol_version(x.request.http_version)) is not None:
        attrs["network.protocol.version"] = pv
    attrs["tapproxy.exchange_id"] = x.id
    if bodies:
        _bodies(x, attrs)


def _with_common(x: Exchange, rpc: tuple[str, dict[str, object]], bodies: bool
                 ) -> tuple[str, dict[str, object]]:
    """A gRPC span: the RPC attributes, and what every span of ours carries."""
    name, attrs = rpc
    if (pv := _protocol_version(x.request.http_version)) is not None:
        attrs["network.protocol.version"] = pv
    attrs["tapproxy.exchange_id"] = x.id
    if bodies:
        _bodies(x, attrs)
    return name, attrs


def _text(msg) -> str:
    try:
        data = decoded_body(msg)
    except CaptureError:
        data = msg.body
    text = data[:_BODY_LIMIT].decode("utf-8", "replace")
    return text + ("…" if len(data) > _BODY_LIMIT or msg.body_truncated else "")


def _bodies(x: Exchange, attrs: dict) -> None:
    if x.request.body:
        attrs["tapproxy.request.body"] = _text(x.request)
    if x.response is not None and x.response.body:
        attrs["tapproxy.response.body"] = _text(x.response)


def client_attributes(x: Exchange, bodies: bool = False, grpc: bool = True
                      ) -> tuple[str, dict[str, object]]:
    """(span name, attributes) of the CLIENT span: the caller's view of the call.
    `grpc` False: the caller knows `x` is no gRPC call (x.is_grpc), not to ask again."""
    if grpc and (rpc := rpc_attributes(x, "client")) is not None:
        return _with_common(x, rpc, bodies)
    attrs: dict[str, object] = {}
    method = _method(x, attrs)
    attrs["server.address"] = x.request.host
    attrs["server.port"] = x.request.port
    attrs["url.full"] = _redact_url(x.request.url)
    _common(x, attrs, 400, bodies)
    return method, attrs


def server_attributes(x: Exchange, bodies: bool = False, grpc: bool = True
                      ) -> tuple[str, dict[str, object]]:
    """(span name, attributes) of the SERVER span: the callee's view of the request."""
    if grpc and (rpc := rpc_attributes(x, "server")) is not None:
        return _with_common(x, rpc, bodies)
    attrs: dict[str, object] = {}
    method = _method(x, attrs)
    q = x.request
    attrs["url.path"] = _redact_path(q.path_only)
    attrs["url.scheme"] = q.scheme
    if q.query:
        attrs["url.query"] = _redact_query(q.query)
    if x.route:
        attrs["http.route"] = x.route
    attrs["server.address"] = q.host
    attrs["server.port"] = q.port
    if x.caller.address:
        attrs["client.address"] = x.caller.address.rpartition(":")[0].strip("[]")
    if ua := q.headers.get("user-agent"):
        attrs["user_agent.original"] = ua
    _common(x, attrs, 500, bodies)
    return (f"{method} {x.route}" if x.route else method), attrs
