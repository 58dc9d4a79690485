"""Exchanges for the diff tests: tests.spans.build's, with response headers and bodies."""

from __future__ import annotations

import dataclasses
import json

from tapproxy.capture import Exchange, Headers
from tests.spans.build import exchange

JSON = (("content-type", "application/json"),)


def answered(id: str, body: object = None, *, status: int = 200, test: str | None = "t::a",
             caller: str = "shop", callee: str = "orders", method: str = "GET",
             path: str = "/orders/1", headers=JSON, request_body: bytes = b"",
             request_headers=(), start: int = 0, end: int | None = None, raw: bytes | None = None,
             **kw) -> Exchange:
    """An exchange answered with `body` as JSON (or `raw` bytes) and `headers`."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    end = start + 5 if end is None else end
    x = exchange(id, caller, callee, start, end, method=method, path=path, status=status,
                 test=test, request_body=request_body, headers=request_headers,
                 response_body=data, **kw)
    return dataclasses.replace(x, response=dataclasses.replace(
        x.response, headers=Headers(tuple(headers))))
