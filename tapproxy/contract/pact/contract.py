"""Pact files (specification v2, v3, v4) as contracts over recorded traffic.

Consumer and provider are caller and callee (`--contract SERVICE=FILE` names the callee
instead of the file's provider). An exchange from the consumer to the provider is matched
to the interaction whose request it satisfies (Pact's own rules, `parts`), then its
response is checked; a request no interaction accepts is an unexpected interaction, and an
interaction never exercised in the whole capture is a missing one. Provider states (v3)
and `pending` (v4) are shown, not matched: a recording has no provider state to compare.
Only v4 `Synchronous/HTTP` interactions are HTTP; message interactions are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.model import Exchange
from tapproxy.contract.model import ContractItem, Hit, Mismatch, Verdict
from tapproxy.contract.pact.parts import (
    Body,
    HttpPart,
    Problem,
    compare_request,
    compare_response,
    compare_status,
    parse_header,
    parse_query,
)
from tapproxy.contract.pact.read import Interaction, read_pact
from tapproxy.contract.source import Document
from tapproxy.errors import CaptureError

__all__ = ["PactContract", "load", "request_part", "response_part"]


def _headers(fields) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in fields:
        key = spelling.setdefault(name.lower(), name)
        out.setdefault(key, []).extend(parse_header(name, value))
    return out


def _body(msg) -> tuple[Body, bool]:
    """The body as Pact sees it, and whether it can be judged (kept whole and decodable)."""
    try:
        data = decoded_body(msg)
    except CaptureError:
        return Body("present", msg.body), False
    return (Body("present", data) if data else Body("empty")), not msg.body_truncated


def request_part(x: Exchange) -> tuple[HttpPart, bool]:
    """The recorded request in Pact's terms (and whether its body can be judged)."""
    body, whole = _body(x.request)
    return HttpPart(headers=_headers(x.request.headers), body=body, method=x.request.method,
                    path=x.request.path_only, query=parse_query(x.request.query)), whole


def response_part(x: Exchange) -> tuple[HttpPart, bool]:
    """The recorded response in Pact's terms (and whether its body can be judged)."""
    assert x.response is not None
    body, whole = _body(x.response)
    return HttpPart(headers=_headers(x.response.headers), body=body,
                    status=x.response.status), whole


@dataclass
class PactContract:
    """A loaded Pact file: `Contract` for `check_records`."""

    path: Path
    doc: Document
    consumer: str
    provider: str
    version: int
    interactions: tuple[Interaction, ...]
    skipped: tuple[str, ...] = ()  # message interactions, by description
    kind: str = "pact"
    per_test: bool = False
    _by_target: dict | None = field(default=None, repr=False)

    def items(self) -> Sequence[ContractItem]:
        return [ContractItem(i.id, f"{self.consumer} → {self.provider} {i.label}",
                             self.doc.location(f"{i.pointer}/description"), self.consumer,
                             self.provider)
                for i in self.interactions]

    def check(self, x: Exchange) -> Verdict | None:
        if x.callee.name != self.provider or x.caller.name != self.consumer:
            return None
        request, whole = request_part(x)
        # Only interactions for this method and path can match: judge those in full.
        tried = [(i, _judgeable(compare_request(i.request, request), whole))
                 for i in self._candidates(request)]
        matched = [i for i, problems in tried if not problems]
        if x.response is None:  # no response to check (the failure story tells why)
            return Verdict(matched[0].id) if matched else self._unexpected(x)
        response, whole = response_part(x)
        if not matched and 400 <= response.status < 500:
            # A negative test: the contract documents this 4xx for this method and path,
            # so the request's details are not held against the call.
            matched = [i for i, problems in tried
                       if not any(p.kind in ("method", "path") for p in problems)
                       and not compare_status(i.response, response)]
        if not matched:
            return self._unexpected(x)
        judged = [(i, _judgeable(compare_response(i.response, response), whole))
                  for i in matched]
        for i, problems in judged:
            if not problems:
                return Verdict(i.id)
        chosen, problems = next(((i, p) for i, p in judged
                                 if not any(q.kind == "status" for q in p)), judged[0])
        return Verdict(chosen.id, tuple(self._mismatch(x, chosen, p, response)
                                        for p in problems))

    def _candidates(self, request: HttpPart) -> list[Interaction]:
        """Interactions for this method and path (or whose path a rule judges)."""
        if self._by_target is None:
            self._by_target = {}
            for i in self.interactions:
                key = (i.request.method.lower(), None if "path" in i.request.rules
                       else i.request.path)
                self._by_target.setdefault(key, []).append(i)
        method = request.method.lower()
        exact = self._by_target.get((method, request.path), [])
        ruled = self._by_target.get((method, None), [])
        if not ruled:
            return exact
        return sorted([*exact, *ruled], key=self.interactions.index)

    def check_test(self, test: str | None, hits: Sequence[Hit]) -> Sequence[Mismatch]:
        return ()

    def check_run(self, counts: Mapping[str, int]) -> Sequence[Mismatch]:
        return [Mismatch("missing-interaction",
                         f"{i.description!r} never happened"
                         + (" (pending)" if i.pending else ""),
                         self.doc.location(f"{i.pointer}/description"), i.id, side="",
                         expected=i.label, caller=self.consumer, callee=self.provider)
                for i in self.interactions if not counts.get(i.id)]

    # --- mismatches ------------------------------------------------------------------

    def _unexpected(self, x: Exchange) -> Verdict:
        target = f"{x.request.method} {x.request.path}"
        where, expected, actual, location = "", "", target, self.doc.location("/interactions")
        request, excerpt = request_part(x)[0], ""
        tried = [(i, compare_request(i.request, request)) for i in self.interactions]
        message = f"no interaction matches {target}"
        near, problems = min(tried, key=lambda t: (
            any(p.kind in ("method", "path") for p in t[1]), len(t[1])), default=(None, []))
        if near is not None and problems:
            # The nearest interaction (same method and path first) says what differs.
            first = problems[0]
            message += f"; nearest {near.description!r}: {first.message}"
            where = _request_where(first)
            expected, actual = _short(first.expected), _short(first.actual)
            location = self.doc.location(first.rules or _request_pointer(near, first))
            if isinstance(first.where, tuple):
                excerpt = _excerpt(request.body.data, first.where)
        return Verdict(None, (Mismatch(
            "unexpected-interaction", message, location, None, where, "request", expected,
            actual, x.id, x.test, x.caller.name, x.callee.name, excerpt),))

    def _mismatch(self, x: Exchange, i: Interaction, p: Problem, response: HttpPart
                  ) -> Mismatch:
        if isinstance(p.where, tuple):
            where = _pointer(p.where)
            node = f"{i.body_pointer('response')}{where}"
            excerpt = _excerpt(response.body.data, p.where)
        elif p.kind == "header":
            where, node, excerpt = f"header {p.where}", i.header_pointer("response", p.where), ""
        else:
            where, node, excerpt = "status", f"{i.pointer}/response/status", ""
        return Mismatch(p.kind, p.message, self.doc.location(p.rules or node), i.id, where,
                        "response", _short(p.expected), _short(p.actual), x.id, x.test,
                        x.caller.name, x.callee.name, excerpt)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _judgeable(problems: list[Problem], whole_body: bool) -> list[Problem]:
    """Body problems of a body kept only in part are not held against it."""
    if whole_body:
        return problems
    return [p for p in problems if not isinstance(p.where, tuple)]


def _request_where(p: Problem) -> str:
    if isinstance(p.where, tuple):
        return _pointer(p.where)
    return f"{p.kind} {p.where}".strip()


def _request_pointer(i: Interaction, p: Problem) -> str:
    if isinstance(p.where, tuple):
        return f"{i.body_pointer('request')}{_pointer(p.where)}"
    if p.kind == "header":
        return i.header_pointer("request", str(p.where))
    if p.kind == "query":
        return f"{i.pointer}/request/query/{str(p.where).replace('~', '~0').replace('/', '~1')}"
    part = {"method": "method", "path": "path"}.get(p.kind, "")
    return f"{i.pointer}/request/{part}".rstrip("/")


def _pointer(tokens: tuple[str, ...]) -> str:
    """Pact's path ("$", "items", "0") as a JSON pointer (/items/0)."""
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[1:])


def _excerpt(data: bytes, tokens: tuple[str, ...], context: int = 2) -> str:
    """A few lines of the pretty-printed body around the value at `tokens`."""
    try:
        value = json.loads(data)
    except ValueError:
        return data[:160].decode("utf-8", "replace")
    parent = value
    for t in tokens[1:-1]:
        if isinstance(parent, dict) and t in parent:
            parent = parent[t]
        elif isinstance(parent, list) and t.isdigit() and int(t) < len(parent):
            parent = parent[int(t)]
        else:
            break
    lines = json.dumps(parent, indent=2, ensure_ascii=False).splitlines()
    key = tokens[-1] if len(tokens) > 1 else None
    at = next((n for n, line in enumerate(lines)
               if key is not None and line.lstrip().startswith(json.dumps(key) + ":")), 0)
    cut = lines[max(at - context, 0):at + context + 1]
    return "\n".join(line[:76] for line in cut)


def load(doc: Document, service: str | None = None) -> PactContract:
    """A Pact file as a contract; `service` names the callee instead of its provider."""
    pact = read_pact(doc)
    return PactContract(doc.path, doc, pact.consumer, service or pact.provider,
                        pact.version, pact.interactions, pact.skipped)
