"""Pact matching rules: reading them (v2 `$.body...` keys, v3/v4 categories) and choosing
the rule list for a value, with the semantics of Pact's reference engine (pact_matching).

A rule list sits at a path expression (`$.items[*].name`); the list chosen for a value is
the one whose expression matches its path with the greatest weight, and it is "cascaded"
when it was written for an ancestor (then size limits and non-cascading rules do not
apply). Applying one rule to one value is `matchers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from tapproxy.contract.pact.formats import DEFAULT_FORMATS

__all__ = ["STAR", "Category", "Rule", "RuleError", "RuleList", "parse_path", "parse_rules",
           "rule_from_json"]

Path = tuple[str, ...]  # a concrete path: ("$", "items", "0", "name")
STAR, _STAR_INDEX = "\x00*", "\x00[*]"  # wildcard tokens in a path expression
_CACHE_SIZE = 4096


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
    # Answers per path: bodies repeat the same paths exchange after exchange.
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def defined(self, path: Path) -> bool:
        """A rule list applies to `path` (written for it or for an ancestor)."""
        if not self.entries:
            return False
        if self.name in ("path", "status"):
            return True
        key = ("defined", path)
        if key not in self._cache:
            self._remember(key, any(_weight(expr, path) > 0 for expr, _ in self.entries))
        return self._cache[key]

    def best(self, path: Path) -> RuleList:
        """The rule list for `path`: the heaviest match in bodies, the first elsewhere."""
        key = ("best", path)
        if key not in self._cache:
            self._remember(key, self._best(path))
        return self._cache[key]

    def _remember(self, key: tuple, value: object) -> None:
        if len(self._cache) >= _CACHE_SIZE:  # paths with ids as keys never repeat: stay flat
            self._cache.clear()
        self._cache[key] = value

    def _best(self, path: Path) -> RuleList:
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
        if not self.entries:
            return []
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
        return Rule(kind, text_of(raw["value"]))
    if kind in DEFAULT_FORMATS:
        fmt = raw.get("format", raw.get(kind)) or DEFAULT_FORMATS[kind]
        return Rule(kind, str(fmt))
    if kind in ("equality", "number", "integer", "decimal", "boolean", "null", "values",
                "notEmpty", "semver"):
        return Rule(kind)
    if kind == "statusCode":
        return Rule(kind, raw.get("status", "success"))
    if kind in ("eachKey", "eachValue"):
        return Rule(kind, rules=tuple(rule_from_json(r) for r in _list(raw, "rules")))
    if kind == "arrayContains":
        variants = []
        for v in _list(raw, "variants"):
            if not isinstance(v, dict):
                raise RuleError("arrayContains variants must be objects")
            rules = v.get("rules")
            cat = (_category("body", rules, "") if isinstance(rules, dict)
                   else Category("body", (((), RuleList((Rule("equality"),))),)))
            variants.append((_int(v.get("index", 0), "variant index"), cat))
        return Rule(kind, variants=tuple(variants))
    raise RuleError(f"unknown matcher type {kind!r}")


def _list(raw: dict, key: str) -> list:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise RuleError(f"`{key}` must be a list")
    return value


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


def text_of(value: object) -> str:
    """A value as Pact's `json_to_string` renders it (strings bare, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                           ensure_ascii=False)
