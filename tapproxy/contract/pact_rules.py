"""Pact matching rules: reading them (v2 `$.body...` keys, v3/v4 categories) and applying
one rule to one value, with the semantics of Pact's reference engine (pact_matching).

A rule list sits at a path expression (`$.items[*].name`); the list chosen for a value is
the one whose expression matches its path with the greatest weight, and it is "cascaded"
when it was written for an ancestor (then size limits and non-cascading rules do not
apply). Regexes must match the whole value, as in Pact (Java's `matches`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from tapproxy.contract.pact_time import DEFAULT_FORMATS, matches_datetime

__all__ = [
    "STAR",
    "Category",
    "Rule",
    "RuleError",
    "RuleList",
    "json_type",
    "match_value",
    "parse_path",
    "parse_rules",
]

Path = tuple[str, ...]  # a concrete path: ("$", "items", "0", "name")
STAR, _STAR_INDEX = "\x00*", "\x00[*]"  # wildcard tokens in a path expression


class RuleError(ValueError):
    """A matching rule Pact would not load; the message says what is wrong."""

    def __init__(self, reason: str, pointer: str | None = None) -> None:
        super().__init__(reason)
        self.pointer = pointer  # the rule's place in the file, once known


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # equality, regex, type, include, integer, ... (Pact's names)
    arg: object = None  # regex, include value, format, content type, status spec
    min: int | None = None
    max: int | None = None
    rules: tuple[Rule, ...] = ()  # eachKey / eachValue
    variants: tuple[tuple[int, Category], ...] = ()  # arrayContains


@dataclass(frozen=True, slots=True)
class RuleList:
    rules: tuple[Rule, ...]
    any_of: bool = False  # combine OR
    cascaded: bool = False
    pointer: str = ""  # where the list is in the pact file

    def cascade(self, cascaded: bool) -> RuleList:
        return RuleList(self.rules, self.any_of, cascaded, self.pointer)


@dataclass(frozen=True, slots=True)
class Category:
    """The rule lists of one category (body, header, query, path, status)."""

    name: str
    entries: tuple[tuple[Path, RuleList], ...] = ()
    _exact: dict = field(default_factory=dict, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def defined(self, path: Path) -> bool:
        """A rule list applies to `path` (written for it or for an ancestor)."""
        if self.name in ("path", "status"):
            return bool(self.entries)
        return any(_weight(expr, path) > 0 for expr, _ in self.entries)

    def best(self, path: Path) -> RuleList:
        """The rule list for `path`: the heaviest match in bodies, the first elsewhere."""
        if self.name in ("path", "status"):
            return self.entries[0][1] if self.entries else RuleList(())
        if self.name != "body":
            return next((r for expr, r in self.entries if _weight(expr, path) > 0),
                        RuleList(()))
        best, score = None, 0
        for expr, rules in self.entries:
            w = _weight(expr, path)
            if w > 0 and w * len(expr) >= score:
                best, score = rules.cascade(len(expr) != len(path)), w * len(expr)
        return best or RuleList(())

    def exact(self, path: Path) -> list[Rule]:
        """Rules written for exactly `path` (also through wildcards)."""
        out: list[Rule] = []
        for expr, rules in self.entries:
            if self.name in ("header", "query"):
                if len(path) == 2 and expr[1:2] == path[1:2]:
                    out.extend(rules.rules)
            elif self.name == "body" and len(expr) == len(path) and _weight(expr, path) > 0:
                out.extend(rules.rules)
        return out

    def with_entries(self, entries: tuple[tuple[Path, RuleList], ...]) -> Category:
        return Category(self.name, entries)


def _token_weight(fragment: str, token: str) -> int:
    if token == STAR:
        return 1
    if token == _STAR_INDEX:
        return 1 if fragment == "[*]" or fragment.isdigit() else 0
    return 2 if fragment == token else 0


def _weight(expr: Path, path: Path) -> int:
    if len(path) < len(expr):
        return 0
    w = 1
    for token, fragment in zip(expr, path, strict=False):
        w *= _token_weight(fragment, token)
        if not w:
            return 0
    return w


_IDENT = re.compile(r"[^.\[\]'*]+")


@lru_cache(maxsize=1024)
def parse_path(expr: str) -> Path:
    """Tokens of a Pact path expression: `$.a['b-c'][0].*` → ("$", "a", "b-c", "0", *)."""
    if not expr:
        return ()
    i, tokens = 0, ["$"]
    if expr[0] == "$":
        i = 1
    else:  # a bare name, as v2 header keys and v3 query names are written
        m = _IDENT.match(expr)
        if not m:
            raise RuleError(f"path {expr!r} does not start with $")
        tokens.append(m.group())
        i = m.end()
    while i < len(expr):
        ch = expr[i]
        if ch == "." and expr[i + 1:i + 2] == "*":
            tokens.append(STAR)
            i += 2
        elif ch == ".":
            m = _IDENT.match(expr, i + 1)
            if not m:
                raise RuleError(f"expected a name after '.' in {expr!r} at {i}")
            tokens.append(m.group())
            i = m.end()
        elif expr.startswith("[*]", i):
            tokens.append(_STAR_INDEX)
            i += 3
        elif expr.startswith("['", i):
            end = expr.find("']", i + 2)
            if end < 0:
                raise RuleError(f"unterminated ['...'] in {expr!r}")
            tokens.append(expr[i + 2:end])
            i = end + 2
        elif ch == "[":
            end = expr.find("]", i)
            if end < 0 or not expr[i + 1:end].isdigit():
                raise RuleError(f"expected an index or * in [] in {expr!r} at {i}")
            tokens.append(expr[i + 1:end])
            i = end + 1
        else:
            raise RuleError(f"expected '.' or '[' in {expr!r} at {i}")
    return tuple(tokens)


# --- reading rules -------------------------------------------------------------------


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RuleError(f"{what} must be a number")
    try:
        return int(value)
    except ValueError:
        raise RuleError(f"{what} must be a number") from None


def rule_from_json(raw: object) -> Rule:
    """One matcher object (`{"match": "regex", "regex": "..."}`) as a Rule."""
    if not isinstance(raw, dict):
        raise RuleError("a matcher must be an object")
    kind = raw.get("match", raw.get("pact:matcher:type"))
    if kind is None:  # Pact guesses the type of old rules from their fields
        for guess in ("regex", "min", "max", "timestamp", "time", "date"):
            if guess in raw:
                kind = "type" if guess in ("min", "max") else guess
                break
        else:
            raise RuleError("matcher has no `match` field")
    kind = {"datetime": "timestamp", "real": "decimal", "content-type": "contentType",
            "array-contains": "arrayContains", "status-code": "statusCode",
            "not-empty": "notEmpty", "each-key": "eachKey", "each-value": "eachValue",
            "min-type": "type", "max-type": "type", "min": "type", "max": "type"}.get(
                str(kind), str(kind))
    lo = _int(raw["min"], "min") if "min" in raw else None
    hi = _int(raw["max"], "max") if "max" in raw else None
    if kind == "regex":
        if "regex" not in raw:
            raise RuleError("regex matcher has no `regex` field")
        try:
            re.compile(str(raw["regex"]))
        except re.error as e:
            raise RuleError(f"regex {raw['regex']!r} does not compile: {e}") from None
        return Rule("regex", str(raw["regex"]))
    if kind == "type":
        return Rule("type", None, lo, hi)
    if kind in ("include", "contentType"):
        if "value" not in raw:
            raise RuleError(f"{kind} matcher has no `value` field")
        return Rule(kind, _text(raw["value"]))
    if kind in DEFAULT_FORMATS:
        fmt = raw.get("format", raw.get(kind)) or DEFAULT_FORMATS[kind]
        return Rule(kind, str(fmt))
    if kind in ("equality", "number", "integer", "decimal", "boolean", "null", "values",
                "notEmpty", "semver"):
        return Rule(kind)
    if kind == "statusCode":
        return Rule(kind, raw.get("status", "success"))
    if kind in ("eachKey", "eachValue"):
        return Rule(kind, rules=tuple(rule_from_json(r) for r in raw.get("rules", ())))
    if kind == "arrayContains":
        variants = []
        for v in raw.get("variants", ()):
            if not isinstance(v, dict):
                raise RuleError("arrayContains variants must be objects")
            rules = v.get("rules")
            cat = (_category("body", rules, "") if isinstance(rules, dict)
                   else Category("body", (((), RuleList((Rule("equality"),))),)))
            variants.append((_int(v.get("index", 0), "variant index"), cat))
        return Rule(kind, variants=tuple(variants))
    raise RuleError(f"unknown matcher type {kind!r}")


def _rule_list(raw: object, pointer: str) -> RuleList:
    if not isinstance(raw, dict):
        raise RuleError("a rule list must be an object with `matchers`")
    matchers = raw.get("matchers")
    if not isinstance(matchers, list):
        raise RuleError("`matchers` must be a list")
    any_of = str(raw.get("combine", "AND")).upper() == "OR"
    return RuleList(tuple(rule_from_json(m) for m in matchers), any_of, False, pointer)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _category(name: str, raw: dict, pointer: str) -> Category:
    if "matchers" in raw:  # path and status: one list for the whole value
        return Category(name, (((), _rule_list(raw, pointer)),))
    entries = []
    for key, value in raw.items():
        at = f"{pointer}/{_escape(key)}"
        try:
            if name in ("header", "query"):
                expr = ("$", key.lower() if name == "header" else key)
            else:
                expr = parse_path(key)
            entries.append((expr, _rule_list(value, at)))
        except RuleError as e:
            raise RuleError(str(e), e.pointer or at) from None
    return Category(name, tuple(entries))


def parse_rules(raw: object, pointer: str,
                on_error: Callable[[str, str], Exception]) -> dict[str, Category]:
    """Every category of a `matchingRules` object, v2 or v3/v4 form.

    `on_error(pointer, reason)` makes the exception raised for a bad rule (it names the
    place in the contract file)."""
    if not isinstance(raw, dict):
        raise on_error(pointer, "matchingRules must be an object")
    out: dict[str, list] = {}
    v2 = any(k.startswith("$") for k in raw)
    for key, value in raw.items():
        at = f"{pointer}/{_escape(key)}"
        try:
            if v2:
                name, expr = _v2_key(key)
                rule = rule_from_json(value)
                out.setdefault(name, []).append((expr, RuleList((rule,), False, False, at)))
            elif isinstance(value, dict):
                out.setdefault(key, []).extend(_category(key, value, at).entries)
            else:
                raise RuleError(f"category {key!r} must be an object")
        except RuleError as e:
            raise on_error(e.pointer or at, str(e)) from None
    return {name: Category(name, tuple(entries)) for name, entries in out.items()}


def _v2_key(key: str) -> tuple[str, Path]:
    tokens = parse_path(key)
    if len(tokens) < 2:
        raise RuleError(f"{key!r} names no part of the request or response")
    part = tokens[1]
    if part == "body":
        return "body", ("$", *tokens[2:])
    name = {"headers": "header", "header": "header", "query": "query", "path": "path",
            "status": "status"}.get(part)
    if name is None:
        raise RuleError(f"{key!r}: unknown part {part!r}")
    if name in ("path", "status"):
        return name, ()
    if len(tokens) < 3:
        raise RuleError(f"{key!r} names no {name}")
    return name, ("$", tokens[2].lower() if name == "header" else tokens[2])


# --- applying one rule ---------------------------------------------------------------


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


def _text(value: object) -> str:
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
        return _match_text(rule, str(expected), str(actual), cascaded)
    if flavour == "status":
        return _match_status(rule, int(expected), int(actual), cascaded)  # type: ignore[arg-type]
    common = _common(rule, _text(actual))
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
        return _content_type_problem(str(rule.arg), _text(actual).encode())
    return None


def _size(rule: Rule, n: int) -> str | None:
    if rule.min is not None and n < rule.min:
        return f"expected at least {rule.min} item(s), got {n}"
    if rule.max is not None and n > rule.max:
        return f"expected at most {rule.max} item(s), got {n}"
    return None


def _match_text(rule: Rule, expected: str, actual: str, cascaded: bool) -> str | None:
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
