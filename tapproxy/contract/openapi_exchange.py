"""One exchange against the OpenAPI operation it matched: parameters, request body,
status, response headers, content type and response body, as Mismatch records.

Request checks are skipped when the service answered a 4xx the operation documents
(explicitly or as `4XX`): a negative test sent a bad request on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import Exchange, Request, Response
from tapproxy.contract.json_excerpt import json_excerpt
from tapproxy.contract.model import Location, Mismatch
from tapproxy.contract.openapi_params import (
    MISSING,
    Param,
    is_checked,
    param_value,
    query_values,
    schema_types,
)
from tapproxy.contract.openapi_schema import SchemaSet
from tapproxy.contract.openapi_spec import Node, Spec
from tapproxy.errors import CaptureError

if TYPE_CHECKING:
    from tapproxy.contract.openapi import Operation

__all__ = ["Judge"]


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _media(content: Node, content_type: str) -> Node | None:
    """The Media Type Object for `content_type`: exact, then `type/*`, then `*/*`."""
    value = content.value
    if not isinstance(value, dict):
        return None
    for key in (content_type, content_type.split("/")[0] + "/*", "*/*"):
        if key in value:
            return content.child(key)
    lowered = {k.split(";")[0].strip().lower(): k for k in value}
    key = lowered.get(content_type)
    return content.child(key) if key is not None else None


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
        if response is not None:
            key, documented = self._response_for(op, response.status)
            if documented is None:
                codes = ", ".join(op.responses.value) if op.responses is not None and \
                    isinstance(op.responses.value, dict) else "none"
                out.append(self._mismatch(
                    x, "status", f"status {response.status} is not documented "
                    f"(documented: {codes})", self._loc(op.responses or op.node), op,
                    side="response", expected=codes, actual=str(response.status),
                    excerpt=f"HTTP {response.status} {response.reason}".strip()))
            negative = 400 <= response.status < 500 and key is not None and key != "default"
        else:
            negative = False
        if not negative:
            self._parameters(x, op, path_params, out)
            self._request_body(x, op, out)
        if documented is not None:
            self._response(x, op, documented, out)
        return tuple(out)

    def _response_for(self, op: Operation, status: int) -> tuple[str | None, Node | None]:
        responses = op.responses
        if responses is None or not isinstance(responses.value, dict):
            return None, None
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses.value:
                return key, self.spec.resolve(responses.child(key))
        return None, None

    # --- request --------------------------------------------------------------------

    def _parameters(self, x: Exchange, op: Operation, path_params: dict,
                    out: list[Mismatch]) -> None:
        if not op.params:
            return
        request = x.request
        query = cookies = None
        for p in op.params:
            if p.where == "path":
                raw = path_params.get(p.name)
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
                self._param_schema(x, op, p, value, raw, out)

    def _missing_param(self, x: Exchange, op: Operation, p: Param,
                       out: list[Mismatch]) -> None:
        kind = "header" if p.where == "header" else "missing-field"
        out.append(self._mismatch(
            x, kind, f"{p.where} parameter {p.name}: required, absent", self._loc(p.node),
            op, at=f"{p.where} {p.name}", side="request", expected="present",
            actual="absent"))

    def _param_schema(self, x: Exchange, op: Operation, p: Param, value: object,
                      raw: list[str] | None, out: list[Mismatch]) -> None:
        for e in self.requests.errors(p.schema, value):
            at = f"{p.where} {p.name}{e.where}"
            kind = "header" if p.where == "header" else e.kind
            out.append(self._mismatch(
                x, kind, f"{at}: expected {e.expected}, got {e.actual}", e.location, op,
                at=at, side="request", expected=e.expected, actual=e.actual,
                excerpt=f"{p.name}: {','.join(raw or ())}"[:76]))

    def _request_body(self, x: Exchange, op: Operation, out: list[Mismatch]) -> None:
        body_spec = op.request_body
        if body_spec is None or not isinstance(body_spec.value, dict):
            return
        request = x.request
        if not request.body and not request.body_size:
            if body_spec.value.get("required") is True:
                out.append(self._mismatch(
                    x, "missing-field", "request body: required, absent",
                    self._loc(body_spec), op, side="request", expected="a body",
                    actual="none"))
            return
        content = body_spec.child("content")
        if content is not None:
            self._body(x, op, request, content, self.requests, "request", out)

    # --- response -------------------------------------------------------------------

    def _response(self, x: Exchange, op: Operation, documented: Node,
                  out: list[Mismatch]) -> None:
        response: Response = x.response  # type: ignore[assignment]
        headers = self.spec.resolve(documented.child("headers"))
        for name, raw in headers.items() if headers is not None else ():
            if name.lower() == "content-type":
                continue  # OpenAPI: described by `content`, ignored here
            self._response_header(x, op, name, self.spec.resolve(raw), response, out)
        content = documented.child("content")
        if content is not None and (response.body or response.body_size):
            self._body(x, op, response, content, self.responses, "response", out)

    def _response_header(self, x: Exchange, op: Operation, name: str, header: Node,
                         response: Response, out: list[Mismatch]) -> None:
        spec = header.value if isinstance(header.value, dict) else {}
        values = response.headers.get_all(name)
        if not values:
            if spec.get("required") is True:
                out.append(self._mismatch(
                    x, "header", f"header {name}: required, absent", self._loc(header), op,
                    at=f"header {name}", side="response", expected="present",
                    actual="absent"))
            return
        schema = header.child("schema")
        if schema is None:
            return
        types = schema_types(self.spec, schema)
        p = Param(name, "header", False, "simple", bool(spec.get("explode")), types,
                  (), schema, header)
        value = param_value(p, [",".join(values)])
        if not is_checked(value):
            return
        for e in self.responses.errors(schema, value):
            at = f"header {name}{e.where}"
            out.append(self._mismatch(
                x, "header", f"{at}: expected {e.expected}, got {e.actual}", e.location,
                op, at=at, side="response", expected=e.expected, actual=e.actual,
                excerpt=f"{name}: {','.join(values)}"[:76]))

    # --- bodies ---------------------------------------------------------------------

    def _body(self, x: Exchange, op: Operation, msg: Request | Response, content: Node,
              schemas: SchemaSet, side: str, out: list[Mismatch]) -> None:
        content_type = msg.content_type
        media = _media(content, content_type) if content_type else None
        if media is None:
            declared = ", ".join(content.value) if isinstance(content.value, dict) else ""
            out.append(self._mismatch(
                x, "header", f"{side} content-type {content_type or 'absent'} is not "
                f"documented ({declared})", self._loc(content), op,
                at="header content-type", side=side, expected=declared,
                actual=content_type or "absent"))
            return
        schema = media.child("schema")
        if schema is None or not _is_json(content_type) or msg.body_size is not None:
            return  # only JSON is judged, and only a body kept whole
        try:
            value = orjson.loads(decoded_body(msg))
        except (orjson.JSONDecodeError, CaptureError) as e:
            reason = str(e).split(":")[0][:40]
            out.append(self._mismatch(
                x, "body-type", f"{side} body is not JSON ({reason})", self._loc(media), op,
                side=side, expected="JSON", actual="not JSON",
                excerpt=msg.body[:76].decode("utf-8", "replace")))
            return
        for e in schemas.errors(schema, value):
            at = e.where or ""
            out.append(self._mismatch(
                x, e.kind, f"{side} body {at or '/'}: expected {e.expected}, got "
                f"{e.actual}", e.location, op, at=at, side=side, expected=e.expected,
                actual=e.actual, excerpt=json_excerpt(value, at)))
