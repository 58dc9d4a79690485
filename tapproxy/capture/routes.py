"""Route templates (`/orders/{id}`): which route an exchange's path belongs to.

An exchange's `route` is what spans name themselves after (`GET /orders/{id}`) and what
later analyses group by; tapproxy knows it only where a template says so. The one
matcher every part uses: `--route`, `--budget` limits, contract operations.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tapproxy.capture.model import Exchange, Record
from tapproxy.errors import UsageError

__all__ = ["Route", "RouteTable", "make_route", "parse_route"]

_PARAM = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """A path template, the callee it is for (None: any) and a value riding with it
    (a budget's limit, a contract's operation)."""

    service: str | None  # None: any callee
    template: str
    pattern: re.Pattern[str] = field(repr=False, compare=False)
    literal_chars: int  # more literal text = more specific
    params: tuple[str, ...] = ()  # the {names} in order, as written (any text but / { })
    value: object = field(default=None, compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        """{param: value} when `path` (query aside) is one of this template's, else None."""
        m = self.pattern.fullmatch(path.partition("?")[0])
        return None if m is None else dict(zip(self.params, m.groups(), strict=True))


def make_route(template: str, *, service: str | None = None, value: object = None,
               what: str = "--route") -> Route:
    """A Route for `/path/{param}/…` (UsageError naming `what` if malformed)."""
    if not template.startswith("/"):
        raise UsageError(f"bad {what} {template!r}: expected [SERVICE:]/path/{{param}}")
    parts = _PARAM.split(template)
    literals, params = parts[::2], tuple(parts[1::2])
    if any("{" in p or "}" in p for p in literals):
        raise UsageError(f"bad {what} {template!r}: unbalanced braces")
    # A {param} is one path segment, never empty; a trailing slash is the same path.
    regex = "([^/]+)".join(re.escape(p) for p in literals)
    return Route(service or None, template, re.compile(regex + "/?"),
                 sum(map(len, literals)), params, value)


def parse_route(spec: str, value: object = None) -> Route:
    """`[SERVICE:]/path/{param}/…` → Route (UsageError naming the spec if malformed)."""
    service, sep, template = spec.partition(":/")
    if sep:
        template = "/" + template
    else:
        service, template = "", spec
    if not template.startswith("/"):
        raise UsageError(f"bad --route {spec!r}: expected [SERVICE:]/path/{{param}}")
    try:
        return make_route(template, service=service or None, value=value)
    except UsageError as e:
        raise UsageError(str(e).replace(repr(template), repr(spec))) from None


def _specificity(r: Route) -> tuple[bool, int]:
    return (r.service is None, -r.literal_chars)


class RouteTable:
    """Route templates, most specific first (a service's own before any service's, more
    literal text first, else as given); also a record transform setting `route`."""

    def __init__(self, routes: Iterable[str | Route] = ()) -> None:
        self._routes = tuple(sorted((parse_route(r) if isinstance(r, str) else r
                                     for r in routes), key=_specificity))
        # Per callee name, one regex of all its candidate routes in order: the first
        # alternative that matches the whole path is the most specific route.
        self._by_service: dict[str, tuple[re.Pattern[str], list[Route], list[int]]] = {}

    def __bool__(self) -> bool:
        return bool(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def _combined(self, service: str) -> tuple[re.Pattern[str], list[Route], list[int]]:
        found = self._by_service.get(service)
        if found is None:
            routes = [r for r in self._routes if r.service is None or r.service == service]
            regex, starts, group = [], [], 1
            for i, r in enumerate(routes):
                regex.append(f"(?P<r{i}>{r.pattern.pattern})")
                starts.append(group)
                group += 1 + len(r.params)
            if len(self._by_service) >= 1024:  # bounded: callee names are few in practice
                self._by_service.clear()
            found = self._by_service[service] = (
                re.compile("|".join(regex) or "(?!)"), routes, starts)
        return found

    def match(self, service: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route of `service` that `path` (query aside) belongs to, with
        its parameters' values, or None."""
        if not self._routes:
            return None
        pattern, routes, starts = self._combined(service)
        m = pattern.fullmatch(path.partition("?")[0])
        if m is None:
            return None
        i = int(m.lastgroup[1:])  # type: ignore[index]  # the route group closes last
        r = routes[i]
        values = m.groups()[starts[i]:starts[i] + len(r.params)]
        return r, dict(zip(r.params, values, strict=True))

    def route_of(self, service: str, path: str) -> str | None:
        """The template of the most specific matching route, or None."""
        found = self.match(service, path)
        return None if found is None else found[0].template

    def __call__(self, record: Record) -> Record:
        if not isinstance(record, Exchange) or record.route is not None:
            return record
        route = self.route_of(record.callee.name, record.request.path)
        return record if route is None else dataclasses.replace(record, route=route)
