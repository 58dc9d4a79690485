"""Applying one Pact matcher to one value, as Pact's reference engine (pact_matching) does.

Three kinds of value meet a matcher: JSON values in bodies, text (headers, query values,
the path, text bodies) and the status code; each has its own answers, which is why
`match_value` takes a flavour. Regexes must match the whole value (Java's `matches`).
"""

from __future__ import annotations

import json
import re

from tapproxy.contract.pact.formats import DEFAULT_FORMATS, matches_datetime
from tapproxy.contract.pact.rules import Rule

__all__ = ["json_equal", "json_type", "match_value", "sniff_content_type", "text_of"]


def json_type(value: object) -> str:
    """Pact's name for a JSON value's type."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Decimal"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


def text_of(value: object) -> str:
    """A value as Pact's `json_to_string` renders it (strings bare, the rest as JSON)."""
    return value if isinstance(value, str) else _dumps(value)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_equal(a: object, b: object) -> bool:
    """Equality of JSON values where 1 and 1.0 and True differ, as they do in serde_json."""
    if json_type(a) != json_type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    return a == b


_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_STATUS_CLASSES = {"info": range(100, 200), "success": range(200, 300),
                   "redirect": range(300, 400), "clientError": range(400, 500),
                   "serverError": range(500, 600), "nonError": range(0, 400),
                   "error": range(400, 1000)}


def _status_ok(code: int, spec: object) -> bool:
    if isinstance(spec, list):
        return any(str(code) == str(s) for s in spec)
    return code in _STATUS_CLASSES.get(str(spec), ())


def _fullmatch(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text == text.strip()


_CASCADES = frozenset({"values", "eachValue", "eachKey"})


def _common(rule: Rule, text: str) -> str | bool | None:
    """Rules judged on the value's text alike for every kind of value; True: not one."""
    if rule.kind == "regex":
        return None if _fullmatch(str(rule.arg), text) else \
            f"expected {text!r} to match {rule.arg!r}"
    if rule.kind == "include":
        return None if str(rule.arg) in text else f"expected {text!r} to include {rule.arg!r}"
    if rule.kind in DEFAULT_FORMATS:
        return None if matches_datetime(text, str(rule.arg)) else \
            f"expected {text!r} to match the {rule.kind} format {rule.arg!r}"
    return True


def match_value(rule: Rule, expected: object, actual: object, cascaded: bool,
                flavour: str = "json") -> str | None:
    """Why `actual` breaks `rule` (None: it does not). flavour "json" for body values,
    "text" for headers, query, path and text bodies, "status" for the status code."""
    if flavour == "text":
        return _matchtext_of(rule, str(expected), str(actual), cascaded)
    if flavour == "status":
        return _match_status(rule, int(expected), int(actual), cascaded)  # type: ignore[arg-type]
    common = _common(rule, text_of(actual))
    if common is not True:
        return common  # type: ignore[return-value]
    kind, et, at = rule.kind, json_type(expected), json_type(actual)
    if kind == "type":
        if et in ("Integer", "Decimal") and at in ("Integer", "Decimal"):
            return None
        if et != at:
            return f"expected a value of type {et}, got {at}"
        if at == "Array" and not cascaded:
            return _size(rule, len(actual))  # type: ignore[arg-type]
        return None
    if kind in ("equality", "values"):
        return None if json_equal(expected, actual) else \
            f"expected {_dumps(expected)}, got {_dumps(actual)}"
    if kind == "null":
        return None if actual is None else f"expected null, got {at}"
    if kind == "integer":
        return None if at == "Integer" else f"expected an integer, got {at}"
    if kind == "decimal":
        return None if at == "Decimal" else f"expected a decimal number, got {at}"
    if kind == "number":
        return None if at in ("Integer", "Decimal") else f"expected a number, got {at}"
    if kind == "boolean":
        return None if at == "Boolean" or actual in ("true", "false") else \
            f"expected a boolean, got {at}"
    if kind == "notEmpty":
        return f"expected a non-empty value, got {_dumps(actual)}" \
            if actual is None or actual in ("", [], {}) else None
    if kind == "semver":
        return None if isinstance(actual, str) and _SEMVER.fullmatch(actual) else \
            f"expected a semantic version, got {_dumps(actual)}"
    if kind == "contentType":
        return _content_type_problem(str(rule.arg), text_of(actual).encode())
    return None


def _size(rule: Rule, n: int) -> str | None:
    if rule.min is not None and n < rule.min:
        return f"expected at least {rule.min} item(s), got {n}"
    if rule.max is not None and n > rule.max:
        return f"expected at most {rule.max} item(s), got {n}"
    return None


def _matchtext_of(rule: Rule, expected: str, actual: str, cascaded: bool) -> str | None:
    common = _common(rule, actual)
    if common is not True:
        return common  # type: ignore[return-value]
    kind = rule.kind
    if kind in ("equality", "values"):
        return None if expected == actual else f"expected {expected!r}, got {actual!r}"
    if kind == "type":
        return None
    if kind in ("number", "decimal"):
        return None if _is_float(actual) else f"expected a number, got {actual!r}"
    if kind == "integer":
        return None if actual.lstrip("+").isdigit() and actual.isascii() else \
            f"expected an integer, got {actual!r}"
    if kind == "boolean":
        return None if actual in ("true", "false") else f"expected a boolean, got {actual!r}"
    if kind == "notEmpty":
        return None if actual else "expected a non-empty value"
    if kind == "semver":
        return None if _SEMVER.fullmatch(actual) else \
            f"expected a semantic version, got {actual!r}"
    if kind == "statusCode":
        return None if actual.isdigit() and _status_ok(int(actual), rule.arg) else \
            f"expected a status of {rule.arg}, got {actual!r}"
    if kind == "contentType":
        return _content_type_problem(str(rule.arg), actual.encode())
    if cascaded and kind in _CASCADES:
        return None
    return f"rule {kind} cannot judge {actual!r}"


def _match_status(rule: Rule, expected: int, actual: int, cascaded: bool) -> str | None:
    kind = rule.kind
    if kind in ("regex", "include"):
        return _common(rule, str(actual))  # type: ignore[return-value]
    if kind in ("type", "number", "integer"):
        return None
    if kind == "equality":
        return None if expected == actual else f"expected {expected}, got {actual}"
    if kind == "decimal":
        return f"expected a decimal number, got {actual}"
    if kind == "statusCode":
        return None if _status_ok(actual, rule.arg) else \
            f"expected a status of {_status_name(rule.arg)}, got {actual}"
    if cascaded and kind in _CASCADES:
        return None
    return f"rule {kind} cannot judge status {actual}"


def _status_name(spec: object) -> str:
    return ", ".join(map(str, spec)) if isinstance(spec, list) else str(spec)


def sniff_content_type(data: bytes) -> str:
    """A payload's content type from its first bytes (what a contentType rule checks)."""
    head = data[:16]
    for magic, ctype in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                         (b"GIF8", "image/gif"), (b"%PDF", "application/pdf"),
                         (b"PK\x03\x04", "application/zip"), (b"\x1f\x8b", "application/gzip")):
        if head.startswith(magic):
            return ctype
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    stripped = text.lstrip()
    if stripped.startswith("<?xml") or (stripped.startswith("<") and ">" in stripped):
        return "application/xml"
    try:
        json.loads(text)
    except ValueError:
        return "text/plain"
    return "application/json"


def _content_type_problem(expected: str, data: bytes) -> str | None:
    base = expected.split(";")[0].strip().lower()
    found = sniff_content_type(data)
    if base == found or (base.endswith("+json") and found == "application/json") \
            or (base.endswith("+xml") and found == "application/xml") \
            or (base == "text/xml" and found == "application/xml") \
            or (base.startswith("text/") and found == "text/plain"):
        return None
    return f"expected content of type {base}, found {found}"
