"""Spans to and from OTLP: protobuf and JSON (https://opentelemetry.io/docs/specs/otlp/).

OTLP/JSON differs from protobuf's JSON mapping in one way that matters: trace and span
ids are hex strings, not base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from tapproxy import __version__
from tapproxy.capture.model import SpanBatch
from tapproxy.errors import SpansError
from tapproxy.spans.model import Span, SpanEvent, SpanLink

__all__ = ["decode_batch", "parse_request", "to_otlp_json", "to_readable"]

_KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT,
          "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}
_PROTO_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
_PROTO_STATUS = {0: "unset", 1: "ok", 2: "error"}
_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # always sampled: no sampler runs on these


def _ids_in_json(node, convert) -> None:
    """Apply `convert` to every trace/span id string in an OTLP JSON document, in place."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_FIELDS and isinstance(v, str):
                node[k] = convert(v)
            else:
                _ids_in_json(v, convert)
    elif isinstance(node, list):
        for item in node:
            _ids_in_json(item, convert)


def _hex_to_b64(v: str) -> str:
    return base64.b64encode(bytes.fromhex(v)).decode() if v else v


def _b64_to_hex(v: str) -> str:
    return base64.b64decode(v).hex() if v else v


def parse_request(payload: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An OTLP/HTTP traces request body (protobuf or JSON) as a protobuf message."""
    msg = ExportTraceServiceRequest()
    try:
        if "json" in content_type:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise ValueError(f"the document is a JSON {type(doc).__name__}, not an object")
            _ids_in_json(doc, _hex_to_b64)
            json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
        else:
            msg.ParseFromString(payload)
    except (ValueError, DecodeError, json_format.ParseError) as e:
        raise SpansError(f"not an OTLP traces request ({content_type}): {e}") from e
    return msg


def _value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def _attrs(kvs) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def decode_batch(batch: SpanBatch) -> list[Span]:
    """The spans an instrumented service sent, as Span values (synthesized=False)."""
    msg = parse_request(batch.payload, batch.content_type)
    out: list[Span] = []
    for rs in msg.resource_spans:
        resource = _attrs(rs.resource.attributes)
        service = str(resource.get("service.name", "unknown_service"))
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(
                    trace_id=_int(s.trace_id), span_id=_int(s.span_id),
                    parent_span_id=_int(s.parent_span_id) or None, name=s.name,
                    kind=_PROTO_KINDS.get(s.kind, "internal"), service=service,
                    start=s.start_time_unix_nano, end=s.end_time_unix_nano,
                    attributes=_attrs(s.attributes),
                    status=_PROTO_STATUS.get(s.status.code, "unset"),
                    status_message=s.status.message,
                    events=tuple(SpanEvent(e.name, e.time_unix_nano, _attrs(e.attributes))
                                 for e in s.events),
                    links=tuple(SpanLink(_int(ln.trace_id), _int(ln.span_id),
                                         _attrs(ln.attributes)) for ln in s.links),
                    synthesized=False, resource=resource, scope=ss.scope.name,
                ))
    return out


def _ctx(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)


def to_readable(spans: Iterable[Span]) -> list[ReadableSpan]:
    """SDK span objects, always sampled: they are exported as they are, no sampler runs."""
    resources: dict[tuple, Resource] = {}
    scopes: dict[str, InstrumentationScope] = {}
    out = []
    for s in spans:
        attrs = s.resource or {"service.name": s.service}
        key = tuple(sorted((k, str(v)) for k, v in attrs.items()))
        resource = resources.get(key) or resources.setdefault(key, Resource(attrs))
        scope = scopes.get(s.scope) or scopes.setdefault(
            s.scope, InstrumentationScope(s.scope, __version__ if s.scope == "tapproxy" else None))
        out.append(ReadableSpan(
            name=s.name, context=_ctx(s.trace_id, s.span_id),
            parent=_ctx(s.trace_id, s.parent_span_id) if s.parent_span_id else None,
            resource=resource, attributes=s.attributes,
            events=[Event(e.name, e.attributes, e.time) for e in s.events],
            links=[Link(_ctx(ln.trace_id, ln.span_id), ln.attributes) for ln in s.links],
            kind=_KINDS[s.kind], status=Status(_STATUS[s.status], s.status_message or None),
            start_time=s.start, end_time=s.end, instrumentation_scope=scope,
        ))
    return out


def _json_value(v) -> dict:
    # OTLP/JSON AnyValue; 64-bit integers are strings, as in protobuf's JSON mapping.
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode()}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_json_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": _json_attrs(v)}}
    return {"stringValue": str(v)}


def _json_attrs(attrs: dict) -> list[dict]:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items()]


_JSON_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_JSON_STATUS = {"unset": 0, "ok": 1, "error": 2}


def _json_span(s: Span) -> dict:
    d: dict = {"traceId": f"{s.trace_id:032x}", "spanId": f"{s.span_id:016x}"}
    if s.parent_span_id:
        d["parentSpanId"] = f"{s.parent_span_id:016x}"
    d.update(name=s.name, kind=_JSON_KINDS[s.kind], startTimeUnixNano=str(s.start),
             endTimeUnixNano=str(s.end))
    if s.attributes:
        d["attributes"] = _json_attrs(s.attributes)
    if s.events:
        d["events"] = [{"timeUnixNano": str(e.time), "name": e.name,
                        **({"attributes": _json_attrs(e.attributes)} if e.attributes else {})}
                       for e in s.events]
    if s.links:
        d["links"] = [{"traceId": f"{ln.trace_id:032x}", "spanId": f"{ln.span_id:016x}",
                       **({"attributes": _json_attrs(ln.attributes)} if ln.attributes else {}),
                       "flags": 0x100}
                      for ln in s.links]
    status: dict = {}
    if s.status_message:
        status["message"] = s.status_message
    if s.status != "unset":
        status["code"] = _JSON_STATUS[s.status]
    d["status"] = status
    d["flags"] = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE, as the SDK sets it: not remote
    return d


def to_otlp_json(spans: Iterable[Span]) -> dict:
    """An OTLP/JSON ExportTraceServiceRequest: one resource per service, hex ids, integer
    enums. Written directly (not through protobuf's JSON mapping, which is five times
    slower and base64-encodes ids); tests check it decodes to what the SDK encodes."""
    resources: dict[tuple, tuple[dict, dict[str, list]]] = {}
    for s in spans:
        attrs = s.resource or {"service.name": s.service}
        key = tuple(sorted((k, str(v)) for k, v in attrs.items()))
        _, scopes = resources.get(key) or resources.setdefault(key, (attrs, {}))
        scopes.setdefault(s.scope, []).append(_json_span(s))
    return {"resourceSpans": [
        {"resource": {"attributes": _json_attrs(attrs)},
         "scopeSpans": [{"scope": {"name": scope, **({"version": __version__}
                                                     if scope == "tapproxy" else {})},
                         "spans": items} for scope, items in scopes.items()]}
        for attrs, scopes in resources.values()]}
