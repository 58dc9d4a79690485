"""Comparing an HTTP request or response with a Pact interaction's, as Pact's engine does.

A port of pact_matching's rules for each part: method (any case), path, query (names to
value lists; unexpected names are mismatches), headers (names in any case, lists split
on commas for HTTP list headers, unexpected headers allowed), status, and bodies by
content type (JSON, form, text; XML bodies are not judged here). Each difference is a
`Problem`; a request matches an interaction when `compare_request` finds none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from tapproxy.contract.pact.rules import Category
from tapproxy.contract.pact.walk import Ctx, Problem, compare_json, compare_lists, judge

__all__ = ["Body", "HttpPart", "Problem", "body_kind", "compare_request",
           "compare_response", "compare_status", "content_type_of", "parse_header",
           "parse_query", "sniff_type"]

#: Headers whose comma-separated values Pact splits (pact_models::headers).
MULTI_VALUE_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "access-control-allow-headers",
    "access-control-allow-methods", "access-control-expose-headers",
    "access-control-request-headers", "allow", "cache-control", "if-match",
    "if-none-match", "vary"})
_PARAMETERISED = frozenset({"accept", "content-type"})
_NO_RULES = Category("body")


@dataclass(frozen=True, slots=True)
class Body:
    state: str  # "missing" | "null" | "empty" | "present"
    data: bytes = b""
    content_type: str | None = None  # declared by the body itself (v4 `contentType`)


@dataclass(frozen=True, slots=True)
class HttpPart:
    """A request (method, path, query set) or a response (status set), either side."""

    headers: dict[str, list[str]] | None = None
    body: Body = Body("missing")
    rules: Mapping[str, Category] = field(default_factory=dict)
    method: str = ""
    path: str = ""
    query: dict[str, list[str | None]] | None = None
    status: int = 0

    def category(self, name: str) -> Category:
        return self.rules.get(name) or Category(name)


def parse_header(name: str, value: str) -> list[str]:
    """One header field's values, split on commas only where HTTP lists are meant."""
    if name.lower() in MULTI_VALUE_HEADERS:
        return [v.strip() for v in value.split(",")]
    return [value.strip()]


def parse_query(query: str) -> dict[str, list[str | None]] | None:
    """A query string as Pact reads it: names to values in order, None for `?flag`."""
    if not query:
        return None
    out: dict[str, list[str | None]] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        out.setdefault(unquote_plus(name), []).append(unquote_plus(value) if eq else None)
    return out


# --- content types -------------------------------------------------------------------

_JSON_CT = re.compile(r"application/.*json|application/jsonrequest")
_XML_CT = re.compile(r"application/.*xml|text/xml")


def sniff_type(data: bytes) -> str:
    """A content type guessed from the first bytes, as Pact guesses one."""
    text = data[:32].decode("utf-8", "replace").lstrip()
    upper = text.upper()
    if upper.startswith(("<HTML", "<!DOCTYPE HTML")):
        return "text/html"
    if text.startswith("<?xml") or re.match(r"<[A-Za-z]", text):
        return "application/xml"
    if re.match(r'(?:\{|\[|"|-?\d|true|false|null)', text):
        return "application/json"
    return "text/plain"


def content_type_of(part: HttpPart) -> str | None:
    """Base content type: the body's own, else the header's, else sniffed from the body."""
    if part.body.content_type:
        return part.body.content_type.split(";")[0].strip().lower()
    for name, values in (part.headers or {}).items():
        if name.lower() == "content-type" and values and values[0].strip():
            return values[0].split(";")[0].strip().lower()
    if part.body.state == "present":
        return sniff_type(part.body.data)
    return None


def body_kind(ctype: str | None) -> str:
    """"json" | "xml" | "form" | "text": which comparison a content type gets."""
    if ctype is None:
        return "text"
    if _JSON_CT.fullmatch(ctype):
        return "json"
    if _XML_CT.fullmatch(ctype):
        return "xml"
    if ctype == "application/x-www-form-urlencoded":
        return "form"
    return "text"


# --- bodies --------------------------------------------------------------------------


def _compare_body(e: HttpPart, a: HttpPart, allow_extra: bool) -> list[Problem]:
    ect, act = content_type_of(e), content_type_of(a)
    if ect and act and ect != act and not _header_rule_accepts(e, ect, act):
        if e.body.state == "present":
            return [Problem("body-type", ("$",), f"expected a body of {ect}, got {act}",
                            ect, act)]
        return []
    eb, ab = e.body, a.body
    if eb.state == "missing":
        return []
    if eb.state in ("null", "empty"):
        if ab.state == "present":
            return [Problem("extra-field", ("$",), "expected no body, got one", "",
                            _short(ab.data))]
        return []
    if ab.state != "present":
        return [Problem("missing-field", ("$",), "expected a body, got none",
                        _short(eb.data), "")]
    rules = e.category("body")
    kind = body_kind(ect or act)
    if kind == "json":
        return _compare_json_bodies(eb.data, ab.data, Ctx(rules, allow_extra))
    if kind == "form":
        return _compare_forms(eb.data, ab.data, rules)
    if kind == "xml":
        return []  # not judged: XML matching is not built (see docs/contracts.md)
    return _compare_text(eb.data, ab.data, rules)


def _short(data: bytes) -> str:
    text = data[:60].decode("utf-8", "replace")
    return text + ("…" if len(data) > 60 else "")


def _header_rule_accepts(e: HttpPart, ect: str, act: str) -> bool:
    rules = e.category("header")
    path = ("$", "content-type")
    return rules.defined(path) and not judge(rules.best(path), ect, act, "text")


def _compare_json_bodies(e: bytes, a: bytes, ctx: Ctx) -> list[Problem]:
    try:
        expected = json.loads(e)
    except ValueError as err:
        return [Problem("body-type", ("$",), f"the contract's body is not JSON: {err}")]
    try:
        actual = json.loads(a)
    except ValueError:
        return [Problem("body-type", ("$",), "the body is not JSON", "JSON", _short(a))]
    return compare_json(("$",), expected, actual, ctx)


def _compare_text(e: bytes, a: bytes, rules: Category) -> list[Problem]:
    if rules.defined(("$",)):
        rl = rules.best(("$",))
        et, at = e.decode("utf-8", "replace"), a.decode("utf-8", "replace")
        return [Problem("body-value", ("$",), why, _short(e), _short(a), rl.pointer)
                for _, why in judge(rl, et, at, "text")]
    if e == a:
        return []
    return [Problem("body-value", ("$",), "the body differs", _short(e), _short(a))]


def _compare_forms(e: bytes, a: bytes, rules: Category) -> list[Problem]:
    def form(data: bytes) -> dict[str, list[str | None]]:
        return parse_query(data.decode("utf-8", "replace")) or {}

    found = _compare_query_maps(form(e), form(a), rules)
    return [Problem("extra-field" if p.kind == "extra" else
                    "missing-field" if p.kind == "missing" else "body-value",
                    ("$", str(p.where)), p.message, p.expected, p.actual, p.rules)
            for p in found]


# --- query, headers, path, method, status --------------------------------------------


def _compare_query(e: HttpPart, a: HttpPart) -> list[Problem]:
    eq, aq = e.query, a.query
    if eq is None:
        return [Problem("query", k, f"unexpected query parameter {k!r}", "", str(v))
                for k, v in (aq or {}).items()]
    found = _compare_query_maps(eq, aq or {}, e.category("query"))
    return [Problem("query", p.where, p.message, p.expected, p.actual, p.rules)
            for p in found]


def _compare_query_maps(eq: dict, aq: dict, rules: Category) -> list[Problem]:
    out: list[Problem] = []
    for key, values in eq.items():
        ev = [v or "" for v in values]
        if key not in aq:
            out.append(Problem("missing", key, f"missing query parameter {key!r}",
                               ", ".join(ev), ""))
            continue
        av = [v or "" for v in aq[key]]
        out += _query_values(key, ev, av, rules)
    for key in aq:
        if key not in eq:
            out.append(Problem("extra", key, f"unexpected query parameter {key!r}", "",
                               ", ".join(v or "" for v in aq[key])))
    return out


def _query_values(key: str, ev: list[str], av: list[str], rules: Category
                  ) -> list[Problem]:
    path = ("$", key)
    if rules.defined(path):
        def value(p, e, a, ctx):
            rl = rules.best(p)
            return [Problem("value", key, f"{key}: {why}", e, a, rl.pointer)
                    for _, why in judge(rl, e, a, "text")]
        return [Problem("value", key, p.message, p.expected, p.actual, p.rules)
                for p in compare_lists(path, ev, av, Ctx(rules, False), value)]
    if not ev and av:
        return [Problem("value", key, f"expected no value for {key!r}", "", ", ".join(av))]
    out = []
    if len(ev) != len(av):
        out.append(Problem("value", key, f"expected {len(ev)} value(s) for {key!r}, "
                           f"got {len(av)}", ", ".join(ev), ", ".join(av)))
    for i, expected in enumerate(ev):
        if i < len(av) and av[i] != expected:
            out.append(Problem("value", key, f"{key}: expected {expected!r}, got {av[i]!r}",
                               expected, av[i]))
    for extra in av[len(ev):]:
        if ev:  # Pact pads the expected values with "" and compares
            out.append(Problem("value", key, f"{key}: unexpected value {extra!r}", "",
                               extra))
    return out


def _header_value(key: str, e: str, a: str, rules: Category) -> str | None:
    e, a = e.strip(), a.strip()
    path = ("$", key.lower())
    if rules.defined(path):
        bad = judge(rules.best(path), e, a, "text")
        return bad[0][1] if bad else None
    if key.lower() in _PARAMETERISED:
        return _parameter_header(e, a)
    if ",".join(v.strip() for v in e.split(",")) == ",".join(v.strip() for v in a.split(",")):
        return None
    return f"expected {e!r}, got {a!r}"


def _parameter_header(e: str, a: str) -> str | None:
    ep = [v.strip() for v in e.split(";") if v.strip()]
    ap = [v.strip() for v in a.split(";") if v.strip()]
    problem = f"expected {e!r}, got {a!r}"
    if (ep[:1] or [""]) != (ap[:1] or [""]):
        return problem

    def params(values: list[str]) -> dict[str, str]:
        return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in values[1:])
                if _}
    actual = params(ap)
    for k, v in params(ep).items():
        if k not in actual or actual[k].lower() != v.lower():
            return problem
    return None


def _compare_headers(e: HttpPart, a: HttpPart) -> list[Problem]:
    out: list[Problem] = []
    actual = {k.lower(): v for k, v in (a.headers or {}).items()}
    rules = e.category("header")
    for key, values in (e.headers or {}).items():
        got = actual.get(key.lower())
        if got is None:
            out.append(Problem("header", key, f"missing header {key}", ", ".join(values), ""))
            continue
        if not values and got:
            out.append(Problem("header", key, f"expected header {key} to be empty",
                               "", ", ".join(got)))
            continue
        if len(values) == 1 and len(got) == 1:
            why = _header_value(key, values[0], got[0], rules)
            if why:
                out.append(Problem("header", key, f"{key}: {why}", values[0], got[0],
                                   _rule_pointer(rules, key)))
            continue
        path = ("$", key.lower())
        if rules.defined(path):
            def one(p, ev, av, ctx, key=key):
                why = _header_value(key, ev, av, rules)
                return [Problem("header", key, f"{key}: {why}", ev, av)] if why else []
            found = compare_lists(path, values, got, Ctx(rules, False), one)
            out += [Problem("header", key, p.message, p.expected, p.actual,
                            _rule_pointer(rules, key)) for p in found]
            continue
        for i in range(max(len(values), len(got))):
            ev = values[i] if i < len(values) else ""
            if i >= len(got):
                out.append(Problem("header", key, f"{key}: missing value {ev!r}", ev, ""))
                continue
            why = _header_value(key, ev, got[i], rules)
            if why:
                out.append(Problem("header", key, f"{key}: {why}", ev, got[i]))
    return out


def _rule_pointer(rules: Category, key: str) -> str:
    path = ("$", key.lower())
    return rules.best(path).pointer if rules.defined(path) else ""


def _compare_path(e: HttpPart, a: HttpPart) -> list[Problem]:
    rules = e.category("path")
    if rules:
        rl = rules.best(())
        return [Problem("path", "", f"path: {why}", e.path, a.path, rl.pointer)
                for _, why in judge(rl, e.path, a.path, "text")]
    if e.path == a.path:
        return []
    return [Problem("path", "", f"expected path {e.path}, got {a.path}", e.path, a.path)]


def compare_request(e: HttpPart, a: HttpPart) -> list[Problem]:
    """Every way request `a` differs from the interaction's request `e`."""
    out: list[Problem] = []
    if e.method.lower() != a.method.lower():
        out.append(Problem("method", "", f"expected {e.method}, got {a.method}",
                           e.method, a.method))
    out += _compare_path(e, a)
    out += _compare_query(e, a)
    out += _compare_headers(e, a)
    out += _compare_body(e, a, allow_extra=False)
    return out


def compare_status(e: HttpPart, a: HttpPart) -> list[Problem]:
    rules = e.category("status")
    if rules:
        rl = rules.best(())
        return [Problem("status", "", why, str(e.status), str(a.status), rl.pointer)
                for _, why in judge(rl, e.status, a.status, "status")]
    if e.status == a.status:
        return []
    return [Problem("status", "", f"expected {e.status}, got {a.status}", str(e.status),
                    str(a.status))]


def compare_response(e: HttpPart, a: HttpPart) -> list[Problem]:
    """Every way response `a` differs from the interaction's response `e`."""
    return [*compare_status(e, a), *_compare_headers(e, a),
            *_compare_body(e, a, allow_extra=True)]
