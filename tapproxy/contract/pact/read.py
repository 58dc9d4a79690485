"""Reading a Pact file (v2, v3, v4) into interactions, as Pact's models read them.

Bodies keep Pact's four states (missing, null, empty, present) because they match
differently; v2/v3 bodies are JSON values (a string is text, or JSON when the content type
says so), v4 bodies are `{"content", "contentType", "encoded"}`. Every error names the
file, line and column of the offending value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from tapproxy.contract.pact.parts import (
    Body,
    HttpPart,
    body_kind,
    parse_header,
    parse_query,
    sniff_type,
)
from tapproxy.contract.pact.rules import Category, parse_rules
from tapproxy.contract.source import Document

__all__ = ["Interaction", "PactFile", "read_pact", "read_part"]


@dataclass(frozen=True, slots=True)
class Interaction:
    id: str
    description: str
    pointer: str  # JSON pointer of the interaction in the file
    request: HttpPart
    response: HttpPart
    states: tuple[str, ...] = ()
    pending: bool = False
    raw_headers: dict = field(default_factory=dict)  # side → header names as written
    v4_bodies: frozenset[str] = frozenset()  # sides whose body is {"content": ...}

    def body_pointer(self, side: str) -> str:
        """Where the side's body value is (JSON pointers below it follow the body)."""
        inner = "/content" if side in self.v4_bodies else ""
        return f"{self.pointer}/{side}/body{inner}"

    @property
    def label(self) -> str:
        text = f"{self.request.method} {self.request.path}: {self.description}"
        if self.states:
            text += " (given " + "; ".join(self.states) + ")"
        return text + (" [pending]" if self.pending else "")

    def header_pointer(self, side: str, name: str) -> str:
        spelled = next((k for k in self.raw_headers.get(side, ()) if k.lower() == name.lower()),
                       name)
        escaped = spelled.replace("~", "~0").replace("/", "~1")
        return f"{self.pointer}/{side}/headers/{escaped}"


@dataclass(frozen=True, slots=True)
class PactFile:
    consumer: str
    provider: str
    version: int
    interactions: tuple[Interaction, ...]
    skipped: tuple[str, ...]


def _version(data: dict) -> int | None:
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return None
    for key in ("pactSpecification", "pact-specification"):
        spec = meta.get(key)
        if isinstance(spec, dict) and spec.get("version"):
            return _major(str(spec["version"]))
    if meta.get("pactSpecificationVersion"):
        return _major(str(meta["pactSpecificationVersion"]))
    return None


def _major(text: str) -> int | None:
    m = re.match(r"v?(\d+)", text.strip())
    return int(m.group(1)) if m else None


def _name(doc: Document, data: dict, role: str) -> str:
    party = data.get(role)
    if not isinstance(party, dict) or not isinstance(party.get("name"), str) \
            or not party["name"]:
        raise doc.error(f"/{role}", f"the pact's {role} needs a name")
    return party["name"]


def read_pact(doc: Document) -> PactFile:
    """Consumer, provider, spec version and HTTP interactions of a Pact document."""
    data = doc.data
    assert isinstance(data, dict)
    consumer, provider = _name(doc, data, "consumer"), _name(doc, data, "provider")
    raw = data.get("interactions")
    if not isinstance(raw, list):
        raise doc.error("/interactions", "interactions must be a list")
    version = _version(data)
    if version is None:
        version = 4 if any(isinstance(i, dict) and "type" in i for i in raw) else 3
    if version not in (1, 2, 3, 4):
        raise doc.error("/metadata", f"Pact specification v{version} is not supported "
                        "(v2, v3 and v4 are)")
    interactions, skipped, seen = [], [], set()
    for n, item in enumerate(raw):
        pointer = f"/interactions/{n}"
        if not isinstance(item, dict):
            raise doc.error(pointer, "an interaction must be an object")
        description = str(item.get("description") or f"interaction {n}")
        kind = item.get("type", "Synchronous/HTTP")
        if version >= 4 and kind != "Synchronous/HTTP":
            skipped.append(f"{description} ({kind})")  # message interactions: not HTTP
            continue
        states = _states(item)
        ident = description if not states else f"{description} (given {'; '.join(states)})"
        while ident in seen:
            ident += "'"
        seen.add(ident)
        request = read_part(doc, item.get("request"), f"{pointer}/request", version, True)
        response = read_part(doc, item.get("response"), f"{pointer}/response", version,
                             False)
        headers = {side: tuple((item.get(side) or {}).get("headers") or ())
                   for side in ("request", "response")}
        v4_bodies = frozenset(
            side for side in ("request", "response") if version >= 4
            and isinstance((item.get(side) or {}).get("body"), dict)
            and "content" in item[side]["body"])
        interactions.append(Interaction(ident, description, pointer, request, response,
                                        states, bool(item.get("pending")), headers,
                                        v4_bodies))
    return PactFile(consumer, provider, version, tuple(interactions), tuple(skipped))


def _states(item: dict) -> tuple[str, ...]:
    if isinstance(item.get("providerStates"), list):
        return tuple(str(s.get("name", s)) if isinstance(s, dict) else str(s)
                     for s in item["providerStates"])
    if item.get("providerState"):
        return (str(item["providerState"]),)
    return ()


def read_part(doc: Document, raw: object, pointer: str, version: int, is_request: bool
              ) -> HttpPart:
    """One request or response object of an interaction (or of a spec test case)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise doc.error(pointer, "must be an object")
    headers = _read_headers(doc, raw.get("headers"), f"{pointer}/headers")
    rules_raw = raw.get("matchingRules", raw.get(
        "requestMatchingRules" if is_request else "responseMatchingRules"))
    rules: dict[str, Category] = {}
    if rules_raw is not None:
        key = "matchingRules" if "matchingRules" in raw else \
            ("requestMatchingRules" if is_request else "responseMatchingRules")
        rules = parse_rules(rules_raw, f"{pointer}/{key}", doc.error)
    body = _read_body(raw, headers, version)
    if not is_request:
        status = raw.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int):
            raise doc.error(f"{pointer}/status", "status must be a number")
        return HttpPart(headers=headers, body=body, rules=rules, status=status)
    query = raw.get("query")
    if isinstance(query, str):
        parsed = parse_query(query)
    elif isinstance(query, dict):
        parsed = {str(k): [None if v is None else str(v) for v in
                           (vals if isinstance(vals, list) else [vals])]
                  for k, vals in query.items()}
    elif query is None:
        parsed = None
    else:
        raise doc.error(f"{pointer}/query", "query must be a string or an object")
    return HttpPart(headers=headers, body=body, rules=rules,
                    method=str(raw.get("method", "GET")).upper(),
                    path=str(raw.get("path", "/")), query=parsed)


def _read_headers(doc: Document, raw: object, pointer: str) -> dict[str, list[str]] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise doc.error(pointer, "headers must be an object")
    out: dict[str, list[str]] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            out[name] = parse_header(name, value)
        elif isinstance(value, list):
            out[name] = [v if isinstance(v, str) else json.dumps(v) for v in value]
        else:
            out[name] = [json.dumps(value)]
    return out


def _header_type(headers: dict[str, list[str]] | None) -> str | None:
    for name, values in (headers or {}).items():
        if name.lower() == "content-type" and values:
            return values[0].split(";")[0].strip().lower()
    return None


def _read_body(raw: dict, headers: dict[str, list[str]] | None, version: int) -> Body:
    if "body" not in raw:
        return Body("missing")
    value = raw["body"]
    if value is None:
        return Body("null")
    if version >= 4 and isinstance(value, dict) and "content" in value:
        return _v4_body(value, headers)
    if isinstance(value, str):
        if not value:
            return Body("empty")
        ctype = _header_type(headers) or sniff_type(value.encode())
        kind = body_kind(ctype)
        if kind == "json":
            try:  # Pact keeps a string that is a JSON object or string, else quotes it
                parsed = json.loads(value)
                keep = isinstance(parsed, (dict, str))
            except ValueError:
                keep = False
            return Body("present", (value if keep else f'"{value}"').encode())
        if ctype.startswith("text/") or kind in ("xml", "form"):
            return Body("present", value.encode())
        return Body("present", _maybe_base64(value))
    return Body("present", json.dumps(value, ensure_ascii=False).encode())


def _maybe_base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def _v4_body(value: dict, headers: dict[str, list[str]] | None) -> Body:
    content = value["content"]
    if content is None:
        return Body("null")
    ctype = str(value.get("contentType") or "") or _header_type(headers)
    encoded = value.get("encoded", False)
    if encoded is True or isinstance(encoded, str):
        text = content if isinstance(content, str) else json.dumps(content)
        data = _maybe_base64(text) if str(encoded).lower() == "base64" else text.encode()
    elif ctype and body_kind(ctype.split(";")[0].strip().lower()) == "json":
        data = b"" if content == "" else json.dumps(content, ensure_ascii=False).encode()
    else:
        data = (content if isinstance(content, str) else json.dumps(content)).encode()
    if not data:
        return Body("empty")
    return Body("present", data, str(value["contentType"]) if value.get("contentType")
                else None)
