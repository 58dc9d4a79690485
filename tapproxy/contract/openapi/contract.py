"""OpenAPI 3.0 and 3.1 documents as contracts: each exchange is matched to an operation
by method and path template, then its request and response are checked against it.

The matched template becomes the route (`Verdict.item` = "GET /pets/{petId}"). Path
templates are matched by `capture.routes.RouteTable`, the project's one route matcher
(most specific first: OpenAPI's concrete paths win over templated ones; one combined
regex per table, so a 50-operation contract costs one match per exchange).

Binding: `--contract SERVICE=FILE` makes every call to SERVICE subject to the document,
as does a `servers` URL whose host:port is the exchange's callee address; a bound call
that no operation matches is an unexpected interaction. Unbound, the document applies
to whatever exchange one of its operations matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tapproxy.capture.model import Exchange
from tapproxy.capture.routes import RouteTable, make_route
from tapproxy.contract.model import ContractItem, Hit, Location, Mismatch, Verdict
from tapproxy.contract.openapi.exchange import (
    BodySpec,
    Judge,
    ResponseSpec,
    prepare_body,
    prepare_responses,
)
from tapproxy.contract.openapi.params import Param, operation_params
from tapproxy.contract.openapi.schema import SchemaSet
from tapproxy.contract.openapi.spec import Node, Spec, load_spec
from tapproxy.contract.source import Document
from tapproxy.errors import UsageError

__all__ = ["OpenApiContract", "Operation", "load"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(slots=True)
class Operation:
    """One operation: what its item is called and what checking it needs."""

    id: str  # "GET /pets/{petId}"
    method: str  # upper case
    template: str  # the path as the document writes it
    node: Node
    params: list[Param]
    request_body: BodySpec | None
    responses: dict[str, ResponseSpec]  # by key: "200", "4XX", "default"
    responses_node: Node | None
    location: Location
    by_status: dict[int, ResponseSpec | None]  # the lookup's answers, per status


def _server_bindings(spec: Spec) -> tuple[set[str], list[str]]:
    """(host:port addresses, base paths) of the document's `servers`."""
    addresses, bases = set(), [""]
    servers = spec.resolve(spec.root.child("servers"))
    for _, server in servers.items() if servers is not None else ():
        url = server.value.get("url") if isinstance(server.value, dict) else None
        if not isinstance(url, str):
            continue
        variables = server.value.get("variables") or {}
        for name, var in variables.items() if isinstance(variables, dict) else ():
            if isinstance(var, dict) and "default" in var:
                url = url.replace("{" + name + "}", str(var["default"]))
        parts = urlsplit(url)
        base = parts.path.rstrip("/")
        if base and "{" not in base and base not in bases:
            bases.append(base)
        if parts.hostname and "{" not in parts.netloc:
            try:
                port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
            except ValueError:
                continue
            hosts = {parts.hostname}
            if parts.hostname == "localhost":
                hosts.add("127.0.0.1")
            addresses.update(f"{h}:{port}" for h in hosts)
    return addresses, bases


class OpenApiContract:
    """An OpenAPI document as a `Contract` (see `tapproxy.contract.model`)."""

    kind = "openapi"
    per_test = False  # every check is of one exchange

    def __init__(self, spec: Spec, service: str | None = None) -> None:
        self.spec = spec
        self.path: Path = spec.documents[spec.root_uri].path
        self.service = service
        self.addresses, bases = _server_bindings(spec)
        self._operations: list[Operation] = []
        routes, seen = [], set()
        paths = spec.resolve(spec.root.child("paths"))
        for template, raw_item in paths.items() if paths is not None else ():
            item = spec.resolve(raw_item)
            ops = {}
            for method in _METHODS:
                node = item.child(method)
                if node is not None and isinstance(node.value, dict):
                    ops[method.upper()] = self._operation(item, node, method, template)
            self._operations.extend(ops.values())
            for base in bases:
                if base + template in seen:
                    continue
                seen.add(base + template)
                try:
                    routes.append(make_route(base + template, value=ops,
                                             what="OpenAPI path"))
                except UsageError as e:
                    raise spec.error(raw_item, str(e)) from None
        self._routes = RouteTable(routes)
        requests, responses = SchemaSet(spec, "request"), SchemaSet(spec, "response")
        self._judge = Judge(spec, requests, responses, self.path)
        # Schemas compile on first use: a capture exercises a few operations of a large
        # document (Stripe's: 588 operations, ~12 ms per schema compiled against it).

    def _operation(self, item: Node, node: Node, method: str, template: str) -> Operation:
        spec = self.spec
        responses = spec.resolve(node.child("responses"))
        return Operation(
            id=f"{method.upper()} {template}", method=method.upper(), template=template,
            node=node, params=operation_params(spec, item, node),
            request_body=prepare_body(spec, node.child("requestBody")),
            responses=prepare_responses(spec, responses), responses_node=responses,
            location=spec.location(node.uri, node.pointer), by_status={})

    def items(self) -> Sequence[ContractItem]:
        edge = f"* → {self.service} " if self.service else ""  # as the own format's
        return [ContractItem(op.id, f"{edge}{op.id}", op.location, callee=self.service)
                for op in self._operations]

    def _bound(self, x: Exchange) -> bool:
        if self.service is not None:
            return x.callee.name == self.service
        return bool(self.addresses) and (
            x.callee.address in self.addresses
            or f"{x.request.host}:{x.request.port}" in self.addresses)

    def match(self, method: str, path: str) -> tuple[Operation | None,
                                                     dict[str, str] | None]:
        """The operation for `method` and `path`, with the path's parameters (those also
        when only the path matched; None when no template matches)."""
        found = self._routes.match("", path)
        if found is None:
            return None, None
        route, params = found
        return route.value.get(method), params  # type: ignore[union-attr]

    def check(self, x: Exchange) -> Verdict | None:
        if self.service is not None and x.callee.name != self.service:
            return None
        if x.grpc_messages:
            return None
        op, params = self.match(x.request.method, x.request.path_only)
        if op is None:
            if not self._bound(x):
                return None
            return Verdict(None, (self._judge.unexpected(x, params is not None),))
        return Verdict(op.id, self._judge.exchange(x, op, params))

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        return ()

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        return ()  # an operation no test called is coverage, not a mismatch


def load(doc: Document, service: str | None = None) -> OpenApiContract:
    """An OpenAPI 3.0/3.1 document as a contract (ContractError at file:line:column if
    it is not valid OpenAPI)."""
    return OpenApiContract(load_spec(doc), service)
