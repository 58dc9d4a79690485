"""tapproxy's own expectation file (`tapproxy: 1`, YAML or JSON; docs/contracts.md).

Loading validates the file against `own.schema.json` and compiles every matcher once;
`OwnContract.check` then judges one exchange, `check_test` a test's calls (sequence,
counts) and `check_run` the capture (interactions never made).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tapproxy.analysis.budget import Budget, parse_budget, parse_duration
from tapproxy.capture.model import GRPC_STATUS_NAMES, Exchange
from tapproxy.capture.routes import Route, make_route
from tapproxy.contract.model import ContractItem, Hit, Location, Mismatch, Verdict
from tapproxy.contract.own.matchers import Matcher, compile_matcher, pointer_join
from tapproxy.contract.own.rules import (
    Counted,
    TestSpec,
    exchange_mismatches,
    run_mismatches,
    test_mismatches,
    unexpected,
)
from tapproxy.contract.source import Document
from tapproxy.errors import UsageError

__all__ = ["Interaction", "OwnContract", "load"]


@functools.cache
def _validator() -> Draft202012Validator:
    text = resources.files("tapproxy.contract.own").joinpath("schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _plain(value: object) -> object:
    """YAML's dates and times as the ISO text a JSON payload carries them in."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


def _pointer(path: Sequence[object]) -> str:
    out = ""
    for token in path:
        out = pointer_join(out, token)  # type: ignore[arg-type]
    return out


def _deepest(error: ValidationError) -> ValidationError:
    """Of an `oneOf`/`if` failure, the alternative's error that says most."""
    while error.context:
        # An enum or const names the values allowed: clearer than "not of type array".
        named = [e for e in error.context if e.validator in ("enum", "const")]
        deeper = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deeper.absolute_path) > len(error.absolute_path):
            error = deeper
        elif named:
            error = named[0]
        else:
            break
    return error


_PATTERNS = {
    "path": "a path template (/orders/{id}: starts with /, no ?query: use `query:`)",
    "method": "an HTTP method",
    "duration": "a duration (e.g. 500ms, 1.5s, 250us, 2m)",
}


#: What a value of these keys may be, for the schema's "not valid under any of the given
#: schemas" (`oneOf`) that would name none of the choices.
_CHOICES = {
    "status": "a status (200), a class (2xx) or a list of them",
    "grpc-status": "a gRPC status name (OK, NOT_FOUND, ...), a number 0-16 or a list",
    "count": "a count: N, any, {exactly: N}, {at-least: N} and/or {at-most: N}",
    "budget": "a duration (e.g. 500ms) or a list of `why --budget` values",
}


def _choice(path: Sequence[object]) -> str | None:
    """The key of `_CHOICES` whose value `path` is in (outside bodies and headers)."""
    keys = [t for t in path if isinstance(t, str)]
    if any(k in ("body", "headers", "query") for k in keys[:-1]):
        return None
    for key in reversed(keys[-2:]):
        if key in _CHOICES:
            return key
    return None


def _reason(error: ValidationError) -> tuple[str, str]:
    """(JSON pointer, reason) of a schema error, in the file's own words."""
    pointer = _pointer(error.absolute_path)
    choice = _choice(error.absolute_path)
    if choice is not None and error.validator in ("oneOf", "const", "enum"):
        return pointer, f"{error.instance!r} is not {_CHOICES[choice]}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        if extra and allowed:
            return (pointer_join(pointer, extra[0]),
                    f"unknown key {extra[0]!r} (expected one of: {', '.join(allowed)})")
    if error.validator == "pattern":
        last = error.absolute_path[-1] if error.absolute_path else ""
        what = _PATTERNS.get(str(last) if last in ("path", "method") else "duration")
        return pointer, f"{error.instance!r} is not {what}"
    if error.validator == "dependentRequired":
        return pointer, "`additional` applies to `fields`: give both"
    if error.validator == "required":
        return pointer, error.message.replace("is a required property", "is missing")
    if error.validator == "const" and error.absolute_path and error.absolute_path[-1] == \
            "tapproxy":
        return pointer, f"format version {error.instance!r}: this tapproxy reads 1"
    return pointer, error.message


def _validate(doc: Document, data: object) -> None:
    errors = [_reason(_deepest(e)) for e in _validator().iter_errors(data)]
    if not errors:
        return

    def place(error: tuple[str, str]) -> tuple[int, int]:
        at = doc.location(error[0])
        return at.line or 0, at.column or 0

    # The first in file order: what a reader fixing the file top-down meets first.
    pointer, reason = min(errors, key=place)
    raise doc.error(pointer, reason)


@dataclass(frozen=True, slots=True)
class Status:
    """The statuses a response may have: codes and classes (`2xx`)."""

    codes: frozenset[int]
    classes: frozenset[int]  # 2 for 2xx
    text: str
    location: Location

    def accepts(self, status: int) -> bool:
        return status in self.codes or status // 100 in self.classes


@dataclass(frozen=True, slots=True)
class GrpcStatus:
    codes: frozenset[int]
    text: str
    location: Location


@dataclass(frozen=True, slots=True)
class Interaction:
    """One compiled interaction: what selects an exchange and what it must be."""

    item: ContractItem
    index: int
    method: str | None
    route: Route
    params: dict[str, Matcher]  # the path's {params}, matched as text
    query: dict[str, Matcher]
    request_headers: dict[str, tuple[str, Matcher]]  # lower name → (name, matcher)
    request_body: Matcher | None
    status: Status | None
    response_headers: dict[str, tuple[str, Matcher]]
    response_body: Matcher | None
    grpc_status: GrpcStatus | None
    budget_ns: int | None
    budget_at: Location | None
    count: Counted

    def selects(self, x: Exchange) -> bool:
        """Caller, callee, method and path: the exchange is a call of this interaction."""
        callee = self.item.callee  # the file's `service` where the interaction names none
        if callee is not None and callee != x.callee.name:
            return False
        if self.item.caller is not None and self.item.caller != x.caller.name:
            return False
        if self.method is not None and self.method != x.request.method.upper():
            return False
        return self.route.pattern.fullmatch(x.request.path_only) is not None


class OwnContract:
    """A loaded expectation file (the `Contract` protocol)."""

    kind = "tapproxy"

    def __init__(self, doc: Document, service: str | None, interactions: list[Interaction],
                 tests: list[TestSpec], budget: Budget | None) -> None:
        self.path = doc.path
        self.service = service
        self.interactions = interactions
        self.tests = tests
        self.budget = budget
        self.per_test = bool(tests)
        self._location = doc.location("/service" if "service" in doc.data else "")
        self._ids = {i.item.id: i for i in interactions}
        self._tests_seen: set[int] = set()

    def items(self) -> Sequence[ContractItem]:
        return [i.item for i in self.interactions]

    def check(self, x: Exchange) -> Verdict | None:
        chosen = [i for i in self.interactions if i.selects(x)]
        if not chosen:
            if self.service is not None and x.callee.name == self.service:
                return Verdict(None, (unexpected(x, self._location),))
            return None
        best: tuple[tuple[int, int], Interaction, list[Mismatch]] | None = None
        bodies: dict = {}
        for interaction in chosen:
            found = exchange_mismatches(interaction, x, self.budget, bodies)
            score = (sum(m.side == "request" for m in found), len(found))
            if best is None or score < best[0]:
                best = (score, interaction, found)
            if not found:
                break
        assert best is not None
        return Verdict(best[1].item.id, tuple(best[2]))

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        out: list[Mismatch] = []
        for n, spec in enumerate(self.tests):
            if spec.applies_to(test):
                self._tests_seen.add(n)
                out.extend(test_mismatches(spec, test, hits, self._ids))
        return out

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        unseen = [t for n, t in enumerate(self.tests) if n not in self._tests_seen]
        self._tests_seen = set()  # the next pass over a capture starts afresh
        return run_mismatches(self.interactions, counts, unseen)


# --- loading ---------------------------------------------------------------------------


def _status(value: object, location: Location) -> Status:
    values = value if isinstance(value, list) else [value]
    codes = frozenset(v for v in values if isinstance(v, int))
    classes = frozenset(int(v[0]) for v in values if isinstance(v, str))
    return Status(codes, classes, " or ".join(str(v) for v in values), location)


def _grpc_status(value: object, location: Location) -> GrpcStatus:
    values = value if isinstance(value, list) else [value]
    codes = frozenset(v if isinstance(v, int) else GRPC_STATUS_NAMES.index(v)
                      for v in values)
    text = " or ".join(GRPC_STATUS_NAMES[c] for c in sorted(codes))
    return GrpcStatus(codes, text, location)


def _count(value: object, location: Location) -> Counted:
    if value is None:
        return Counted(1, None, location, default=True)
    if value == "any":
        return Counted(0, None, location)
    if isinstance(value, int):
        return Counted(value, value, location)
    assert isinstance(value, dict)
    if "exactly" in value:
        return Counted(value["exactly"], value["exactly"], location)
    return Counted(value.get("at-least", 0), value.get("at-most"), location)


class _Compiler:
    def __init__(self, doc: Document, data: dict) -> None:
        self.doc, self.data = doc, data
        self.additional = bool(data.get("additional", True))

    def matcher(self, node: object, pointer: str, text: bool = False) -> Matcher:
        try:
            return compile_matcher(node, pointer, self.doc.location, text=text,
                                   additional=self.additional)
        except ValueError as e:
            reason, where = e.args
            raise self.doc.error(where, reason) from None

    def headers(self, node: dict | None, pointer: str) -> dict[str, tuple[str, Matcher]]:
        return {str(k).lower(): (str(k), self.matcher(v, pointer_join(pointer, k), True))
                for k, v in (node or {}).items()}

    def duration(self, text: str, pointer: str) -> int:
        try:
            return parse_duration(text, "budget")
        except UsageError as e:
            raise self.doc.error(pointer, str(e)) from None

    def budget(self) -> Budget | None:
        value = self.data.get("budget")
        if value is None:
            return None
        if isinstance(value, str):
            return Budget(self.duration(value, "/budget"))
        for n, spec in enumerate(value):
            try:
                parse_budget([spec])
            except UsageError as e:  # its words are the option's; here it is a key
                raise self.doc.error(f"/budget/{n}",
                                     str(e).replace("--budget", "budget")) from None
        return parse_budget(value)

    def interaction(self, n: int, node: dict, service: str | None) -> Interaction:
        at = f"/interactions/{n}"
        req, resp = node["request"], node.get("response") or {}
        method = req.get("method")
        method = method.upper() if method else None
        path = req["path"]
        try:
            route = make_route(path, what="path template")
        except UsageError as e:
            raise self.doc.error(f"{at}/request/path", str(e)) from None
        for name in req.get("params") or ():
            if name not in route.params:
                raise self.doc.error(pointer_join(f"{at}/request/params", name),
                                     f"{path} has no {{{name}}}")
        caller, callee = node.get("caller"), node.get("callee") or service
        edge = f"{caller or '*'} → {callee or '*'} " if caller or callee else ""
        label = f"{edge}{method or '*'} {path}"
        item = ContractItem(node.get("id") or f"{method or '*'} {path}", label,
                            self.doc.location(at), caller, callee)
        return Interaction(
            item=item,
            index=n,
            method=method,
            route=route,
            params={str(k): self.matcher(v, pointer_join(f"{at}/request/params", k), True)
                    for k, v in (req.get("params") or {}).items()},
            query={str(k): self.matcher(v, pointer_join(f"{at}/request/query", k), True)
                   for k, v in (req.get("query") or {}).items()},
            request_headers=self.headers(req.get("headers"), f"{at}/request/headers"),
            request_body=(self.matcher(req["body"], f"{at}/request/body")
                          if "body" in req else None),
            status=(_status(resp["status"], self.doc.location(f"{at}/response/status"))
                    if "status" in resp else None),
            response_headers=self.headers(resp.get("headers"), f"{at}/response/headers"),
            response_body=(self.matcher(resp["body"], f"{at}/response/body")
                           if "body" in resp else None),
            grpc_status=(_grpc_status(resp["grpc-status"],
                                      self.doc.location(f"{at}/response/grpc-status"))
                         if "grpc-status" in resp else None),
            budget_ns=(self.duration(node["budget"], f"{at}/budget")
                       if "budget" in node else None),
            budget_at=self.doc.location(f"{at}/budget" if "budget" in node else "/budget")
            if "budget" in node or "budget" in self.data else None,
            count=_count(node.get("count"),
                         self.doc.location(f"{at}/count" if "count" in node else at)),
        )

    def unique_ids(self, interactions: list[Interaction]) -> list[Interaction]:
        seen: dict[str, int] = {}
        out = []
        for i in interactions:
            if i.item.id in seen:
                if "id" in self.data["interactions"][i.index]:
                    raise self.doc.error(f"/interactions/{i.index}/id",
                                         f"id {i.item.id!r} is already interaction "
                                         f"{seen[i.item.id] + 1}'s")
                i = _renamed(i, f"{i.item.id} #{i.index + 1}")
            seen[i.item.id] = i.index
            out.append(i)
        return out

    def test(self, n: int, node: dict, ids: set[str]) -> TestSpec:
        at = f"/tests/{n}"

        def known(name: str, pointer: str) -> str:
            if name not in ids:
                shown = ", ".join(sorted(ids))
                shown = shown if len(shown) <= 60 else shown[:59] + "…"
                raise self.doc.error(pointer, f"no interaction has id {name!r} "
                                              f"(ids: {shown or 'none'})")
            return name

        sequence = tuple((known(name, f"{at}/sequence/{k}"),
                          self.doc.location(f"{at}/sequence/{k}"))
                         for k, name in enumerate(node.get("sequence") or ()))
        counts = tuple((known(str(name), pointer_join(f"{at}/count", name)),
                        _count(v, self.doc.location(pointer_join(f"{at}/count", name))))
                       for name, v in (node.get("count") or {}).items())
        return TestSpec(node["test"], sequence, counts, self.doc.location(f"{at}/test"))


def _renamed(i: Interaction, new_id: str) -> Interaction:
    from dataclasses import replace

    return replace(i, item=replace(i.item, id=new_id))


def load(doc: Document, service: str | None = None) -> OwnContract:
    """Compile an expectation file; ContractError naming file:line:column and why."""
    data = _plain(doc.data)
    _validate(doc, data)
    assert isinstance(data, dict)
    service = service or data.get("service")
    compiler = _Compiler(doc, data)
    interactions = compiler.unique_ids([compiler.interaction(n, node, service)
                                        for n, node in enumerate(data["interactions"])])
    ids = {i.item.id for i in interactions}
    tests = [compiler.test(n, node, ids) for n, node in enumerate(data.get("tests") or ())]
    return OwnContract(doc, service, interactions, tests, compiler.budget())
