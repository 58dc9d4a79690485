"""One exchange against the OpenAPI operation it matched: parameters, request body,
status, response headers, content type and response body, as Mismatch records.

Request checks are skipped when the service answered a 4xx the operation documents
(explicitly or as `4XX`): a negative test sent a bad request on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson

from tapproxy.capture.encoding import decode_body
from tapproxy.capture.model import Exchange, Request, Response
from tapproxy.contract.excerpt import payload_excerpt
from tapproxy.contract.model import Location, Mismatch
from tapproxy.contract.openapi.params import (
    MISSING,
    Param,
    is_checked,
    param_value,
    query_values,
    schema_types,
)
from tapproxy.contract.openapi.schema import SchemaSet
from tapproxy.contract.openapi.spec import Node, Spec
from tapproxy.errors import CaptureError

if TYPE_CHECKING:
    from tapproxy.contract.openapi.contract import Operation

__all__ = ["Judge"]


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


@dataclass(frozen=True, slots=True)
class _Content:
    """A `content` map: Media Type Objects by lower-case type, each with its schema."""

    node: Node
    by_type: dict[str, tuple[Node, Node | None]]
    declared: str  # "application/json, text/plain", as a mismatch names them

    def find(self, content_type: str) -> tuple[Node, Node | None] | None:
        """Exact type, then `type/*`, then `*/*`."""
        by = self.by_type
        return by.get(content_type) or by.get(content_type.split("/")[0] + "/*") \
            or by.get("*/*")


def _content(node: Node | None) -> _Content | None:
    if node is None or not isinstance(node.value, dict):
        return None
    by = {}
    for key, media in node.items():
        by[key.split(";")[0].strip().lower()] = (media, media.child("schema"))
    return _Content(node, by, ", ".join(node.value))


@dataclass(frozen=True, slots=True)
class _Header:
    name: str
    node: Node
    required: bool
    param: Param | None  # how to read and judge its value, None without a schema


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """A Response Object prepared once: its headers and content."""

    key: str  # "200", "4XX", "default"
    node: Node
    headers: tuple[_Header, ...]
    content: _Content | None


@dataclass(frozen=True, slots=True)
class BodySpec:
    """A Request Body Object prepared once."""

    node: Node
    required: bool
    content: _Content | None


def prepare_responses(spec: Spec, responses: Node | None) -> dict[str, ResponseSpec]:
    """An operation's responses by key, references followed once."""
    out = {}
    for key, raw in responses.items() if responses is not None else ():
        node = spec.resolve(raw)
        headers = []
        hs = spec.resolve(node.child("headers"))
        for name, raw_h in hs.items() if hs is not None else ():
            if name.lower() == "content-type":
                continue  # OpenAPI: described by `content`, ignored as a header
            h = spec.resolve(raw_h)
            v = h.value if isinstance(h.value, dict) else {}
            schema = h.child("schema")
            param = None if schema is None else Param(
                name, "header", False, "simple", bool(v.get("explode")),
                schema_types(spec, schema), (), schema, h)
            headers.append(_Header(name, h, v.get("required") is True, param))
        out[key] = ResponseSpec(key, node, tuple(headers), _content(node.child("content")))
    return out


def prepare_body(spec: Spec, body: Node | None) -> BodySpec | None:
    """An operation's requestBody, references followed once."""
    body = spec.resolve(body)
    if body is None or not isinstance(body.value, dict):
        return None
    return BodySpec(body, body.value.get("required") is True,
                    _content(body.child("content")))


def _content_type_and_coding(msg: Request | Response) -> tuple[str, str | None]:
    # From the raw fields: decoding every header of every exchange (as Headers.get
    # does on first use) costs more than the rest of a small exchange's check.
    content_type, coding = "", None
    for k, v in msg.headers.raw:
        if len(k) == 12 and k.lower() == b"content-type":
            content_type = v.decode("latin-1").split(";")[0].strip().lower()
        elif len(k) == 16 and k.lower() == b"content-encoding":
            coding = v.decode("latin-1")
    return content_type, coding


def _cookies(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for header in request.headers.get_all("cookie"):
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep:
                out.setdefault(name, []).append(value)
    return out


class Judge:
    """Checks exchanges against operations of one document."""

    def __init__(self, spec: Spec, requests: SchemaSet, responses: SchemaSet,
                 path: Path) -> None:
        self.spec, self.requests, self.responses, self.path = spec, requests, responses, path

    def _loc(self, node: Node | None) -> Location:
        if node is None:
            return Location(self.path)
        return self.spec.location(node.uri, node.pointer)

    @staticmethod
    def _mismatch(x: Exchange, kind: str, message: str, where: Location, op: Operation |
                  None, *, at: str = "", side: str = "", expected: str = "",
                  actual: str = "", excerpt: str = "") -> Mismatch:
        return Mismatch(kind, message, where, op.id if op else None, at, side, expected,
                        actual, x.id, x.test, x.caller.name, x.callee.name, excerpt)

    def unexpected(self, x: Exchange, path_known: bool) -> Mismatch:
        what = f"{x.request.method} {x.request.path_only}"
        reason = ("the path is documented, not this method" if path_known
                  else "no path of the document matches")
        return self._mismatch(x, "unexpected-interaction", f"{what}: {reason}",
                              self._loc(self.spec.root.child("paths")), None,
                              expected="a documented operation", actual=what)

    def exchange(self, x: Exchange, op: Operation, path_params: dict) -> tuple:
        out: list[Mismatch] = []
        response = x.response
        documented = None
        negative = False
        if response is not None:
            documented = self._response_for(op, response.status)
            if documented is None:
                codes = ", ".join(op.responses) or "none"
                out.append(self._mismatch(
                    x, "status", f"status {response.status} is not documented "
                    f"(documented: {codes})", self._loc(op.responses_node or op.node), op,
                    side="response", expected=codes, actual=str(response.status),
                    excerpt=f"HTTP {response.status} {response.reason}".strip()))
            else:
                negative = 400 <= response.status < 500 and documented.key != "default"
        if not negative:
            if op.params:
                self._parameters(x, op, path_params, out)
            if op.request_body is not None:
                self._request_body(x, op, op.request_body, out)
        if documented is not None:
            self._response(x, op, documented, out)
        return tuple(out)

    @staticmethod
    def _response_for(op: Operation, status: int) -> ResponseSpec | None:
        cache = op.by_status
        if status in cache:
            return cache[status]
        responses = op.responses
        found = None
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                found = responses[key]
                break
        if len(cache) < 64:  # statuses are few; bounded all the same
            cache[status] = found
        return found

    # --- request --------------------------------------------------------------------

    def _parameters(self, x: Exchange, op: Operation, path_params: dict,
                    out: list[Mismatch]) -> None:
        request = x.request
        query = cookies = None
        for p in op.params:
            if p.where == "path":
                text = path_params.get(p.name)
                raw = None if text is None else [unquote(text)]
            elif p.where == "query":
                if query is None:
                    query = query_values(request.query)
                raw = query.get(p.name)
                if raw is None and ("object" in p.types or p.style == "deepObject"):
                    raw = []  # spread over other names: not judged, not missing
            elif p.where == "header":
                raw = request.headers.get_all(p.name) or None
                if raw is not None:
                    raw = [",".join(raw)]
            else:
                if cookies is None:
                    cookies = _cookies(request)
                raw = cookies.get(p.name)
            value = param_value(p, raw)
            if value is MISSING:
                if p.required:
                    self._missing_param(x, op, p, out)
                continue
            # Cookies are redacted when recorded: their values are not the service's.
            if is_checked(value) and p.schema is not None and p.where != "cookie":
                self._param_schema(x, op, p, value, raw, self.requests, "request", out)

    def _missing_param(self, x: Exchange, op: Operation, p: Param,
                       out: list[Mismatch]) -> None:
        kind = "header" if p.where == "header" else "missing-field"
        out.append(self._mismatch(
            x, kind, f"{p.where} parameter {p.name}: required, absent", self._loc(p.node),
            op, at=f"{p.where} {p.name}", side="request", expected="present",
            actual="absent"))

    def _param_schema(self, x: Exchange, op: Operation, p: Param, value: object,
                      raw: list[str] | None, schemas: SchemaSet, side: str,
                      out: list[Mismatch]) -> None:
        for e in schemas.errors(p.schema, value):  # type: ignore[arg-type]
            at = f"{p.where} {p.name}{e.where}"
            kind = "header" if p.where == "header" else e.kind
            out.append(self._mismatch(
                x, kind, f"{at}: expected {e.expected}, got {e.actual}", e.location, op,
                at=at, side=side, expected=e.expected, actual=e.actual,
                excerpt=f"{p.name}: {','.join(raw or ())}"[:76]))

    def _request_body(self, x: Exchange, op: Operation, body: BodySpec,
                      out: list[Mismatch]) -> None:
        request = x.request
        if not request.body and not request.body_size:
            if body.required:
                out.append(self._mismatch(
                    x, "missing-field", "request body: required, absent",
                    self._loc(body.node), op, side="request", expected="a body",
                    actual="none"))
            return
        if body.content is not None:
            self._body(x, op, request, body.content, self.requests, "request", out)

    # --- response -------------------------------------------------------------------

    def _response(self, x: Exchange, op: Operation, documented: ResponseSpec,
                  out: list[Mismatch]) -> None:
        response: Response = x.response  # type: ignore[assignment]
        if documented.headers:
            for h in documented.headers:
                self._response_header(x, op, h, response, out)
        if documented.content is not None and (response.body or response.body_size):
            self._body(x, op, response, documented.content, self.responses, "response",
                       out)

    def _response_header(self, x: Exchange, op: Operation, h: _Header,
                         response: Response, out: list[Mismatch]) -> None:
        values = response.headers.get_all(h.name)
        if not values:
            if h.required:
                out.append(self._mismatch(
                    x, "header", f"header {h.name}: required, absent", self._loc(h.node),
                    op, at=f"header {h.name}", side="response", expected="present",
                    actual="absent"))
            return
        if h.param is None:
            return
        raw = [",".join(values)]
        value = param_value(h.param, raw)
        if is_checked(value):
            self._param_schema(x, op, h.param, value, raw, self.responses, "response",
                               out)

    # --- bodies ---------------------------------------------------------------------

    def _body(self, x: Exchange, op: Operation, msg: Request | Response,
              content: _Content, schemas: SchemaSet, side: str,
              out: list[Mismatch]) -> None:
        content_type, coding = _content_type_and_coding(msg)
        media = content.find(content_type) if content_type else None
        if media is None:
            out.append(self._mismatch(
                x, "header", f"{side} content-type {content_type or 'absent'} is not "
                f"documented ({content.declared})", self._loc(content.node), op,
                at="header content-type", side=side, expected=content.declared,
                actual=content_type or "absent"))
            return
        media_node, schema = media
        if schema is None or not _is_json(content_type) or msg.body_size is not None:
            return  # only JSON is judged, and only a body kept whole
        try:
            raw = decode_body(msg.body, coding) if coding else msg.body
            if schemas.accepts(schema, raw):
                return  # valid: nothing to parse into Python values
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = json.loads(raw)  # what orjson refuses, e.g. 1e400, JSON still is
        except (ValueError, CaptureError) as e:
            reason = str(e).split(":")[0][:40]
            out.append(self._mismatch(
                x, "body-type", f"{side} body is not JSON ({reason})",
                self._loc(media_node), op, side=side, expected="JSON", actual="not JSON",
                excerpt=msg.body[:76].decode("utf-8", "replace")))
            return
        errors = schemas.errors(schema, value)
        if errors:
            # orjson reads integers beyond 64 bits as floats: judge the exact value.
            value = json.loads(raw)
            errors = schemas.errors(schema, value)
        for e in errors:
            at = e.where or ""
            out.append(self._mismatch(
                x, e.kind, f"{side} body {at or '/'}: expected {e.expected}, got "
                f"{e.actual}", e.location, op, at=at, side=side, expected=e.expected,
                actual=e.actual, excerpt=payload_excerpt(value, at)))
