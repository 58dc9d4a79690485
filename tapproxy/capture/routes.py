"""Route templates (`/orders/{id}`): which route an exchange's path belongs to.

An exchange's `route` is what spans name themselves after (`GET /orders/{id}`) and what
later analyses group by; tapproxy knows it only where a template says so.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from tapproxy.capture.model import Exchange, Record
from tapproxy.errors import UsageError

__all__ = ["RouteTable", "parse_route"]

_PARAM = re.compile(r"\{[^{}/]+\}")


@dataclass(frozen=True, slots=True)
class Route:
    service: str | None  # None: any callee
    template: str
    pattern: re.Pattern[str]
    literal_chars: int  # more literal text = more specific


def parse_route(spec: str) -> Route:
    """`[SERVICE:]/path/{param}/…` → Route (UsageError naming the spec if malformed)."""
    service, sep, template = spec.partition(":/")
    if sep:
        template = "/" + template
    else:
        service, template = "", spec
    if not template.startswith("/"):
        raise UsageError(f"bad --route {spec!r}: expected [SERVICE:]/path/{{param}}")
    parts = _PARAM.split(template)
    if any("{" in p or "}" in p for p in parts):
        raise UsageError(f"bad --route {spec!r}: unbalanced braces")
    # A {param} is one path segment, never empty.
    regex = "[^/]+".join(re.escape(p) for p in parts)
    return Route(service or None, template, re.compile(regex + "/?"),
                 sum(len(p) for p in parts))


class RouteTable:
    """Route templates, most specific first; also a record transform setting `route`."""

    def __init__(self, specs: tuple[str, ...] = ()) -> None:
        self._routes = sorted((parse_route(s) for s in specs),
                              key=lambda r: (r.service is None, -r.literal_chars))

    def __bool__(self) -> bool:
        return bool(self._routes)

    def route_of(self, service: str, path: str) -> str | None:
        path = path.split("?", 1)[0]
        for r in self._routes:
            if (r.service is None or r.service == service) and r.pattern.fullmatch(path):
                return r.template
        return None

    def __call__(self, record: Record) -> Record:
        if not isinstance(record, Exchange) or record.route is not None:
            return record
        route = self.route_of(record.callee.name, record.request.path)
        return record if route is None else dataclasses.replace(record, route=route)
