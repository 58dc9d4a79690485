"""The vendored Pact specification cases (tests/contract/data/pact-spec) run through
tapproxy's Pact contract: each case's `expected` becomes a one-interaction Pact file, its
`actual` a recorded Exchange, and the verdict is compared with the case's `match`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract.pact.contract import load
from tapproxy.contract.pact.read import read_part
from tapproxy.contract.source import read_document

DATA = Path(__file__).parent / "data" / "pact-spec"
VERSIONS = ("v2", "v3", "v4")
_SPEC = {"v2": "2.0.0", "v3": "3.0.0", "v4": "4.0"}


@dataclass(frozen=True)
class Case:
    version: str
    name: str  # e.g. "request/body/missing key.json"
    data: dict

    @property
    def side(self) -> str:
        return self.name.split("/")[0]

    @property
    def xml(self) -> bool:
        return "xml" in self.name.rsplit("/", 1)[-1].lower()


def cases(version: str) -> list[Case]:
    root = DATA / version
    return [Case(version, str(p.relative_to(root)), json.loads(p.read_text("utf-8")))
            for p in sorted(root.rglob("*.json"))]


def _query_string(query: object) -> str:
    if isinstance(query, str) or query is None:
        return query or ""
    parts = []
    for name, values in query.items():
        for v in values if isinstance(values, list) else [values]:
            parts.append(quote_plus(name) if v is None
                         else f"{quote_plus(name)}={quote_plus(str(v))}")
    return "&".join(parts)


def _fields(headers: object) -> list[tuple[str, str]]:
    out = []
    for name, value in (headers or {}).items():
        for v in value if isinstance(value, list) else [value]:
            out.append((name, v))
    return out


def _message_parts(case: Case, raw: dict, tmp: Path) -> tuple[Headers, bytes]:
    """Headers and body bytes of the case's actual side, as they would be on the wire."""
    doc = read_document(tmp / "actual.json", json.dumps({"x": raw}))
    part = read_part(doc, raw, "/x", int(case.version[1]), case.side == "request")
    fields = _fields(raw.get("headers"))
    if part.body.content_type and not any(n.lower() == "content-type" for n, _ in fields):
        fields.append(("Content-Type", part.body.content_type))
    body = part.body.data if part.body.state == "present" else b""
    return Headers(tuple(fields)), body


def exchange_of(case: Case, tmp: Path) -> Exchange:
    actual = case.data["actual"]
    if case.side == "request":
        headers, body = _message_parts(case, actual, tmp)
        query = _query_string(actual.get("query"))
        target = actual.get("path", "/") + (f"?{query}" if query else "")
        request = Request(actual.get("method", "GET"), "http", "127.0.0.1", 80, target,
                          "HTTP/1.1", headers, body)
        response = Response(200, "OK", "HTTP/1.1")
    else:
        request = Request("GET", "http", "127.0.0.1", 80, "/", "HTTP/1.1")
        headers, body = _message_parts(case, actual, tmp)
        response = Response(actual.get("status", 200), "", "HTTP/1.1", headers, body)
    return Exchange("x1", Party("web", "header"), Party("orders", "service-map"), request,
                    Timing(1), response)


def pact_of(case: Case, tmp: Path) -> Path:
    expected = case.data["expected"]
    interaction = {"description": "the case"}
    if case.side == "request":
        interaction |= {"request": expected, "response": {"status": 200}}
    else:
        interaction |= {"request": {"method": "GET", "path": "/"}, "response": expected}
    if case.version == "v4":
        interaction["type"] = "Synchronous/HTTP"
    pact = {"consumer": {"name": "web"}, "provider": {"name": "orders"},
            "interactions": [interaction],
            "metadata": {"pactSpecification": {"version": _SPEC[case.version]}}}
    path = tmp / f"{case.version}-{case.name.replace('/', '_')}"
    path.write_text(json.dumps(pact, indent=2), "utf-8")
    return path


def verdict_matches(case: Case, tmp: Path) -> tuple[bool, tuple]:
    """Whether tapproxy finds the actual side to match, and the mismatches it found."""
    contract = load(read_document(pact_of(case, tmp)))
    verdict = contract.check(exchange_of(case, tmp))
    assert verdict is not None
    return verdict.item is not None and not verdict.mismatches, verdict.mismatches
