"""Matchers of tapproxy's own expectation file: a value in the file says what a payload
value may be (docs/contracts.md, "Matchers").

A plain value is itself (a mapping: an object with at least those fields, a list: that
many items each matched in turn); a mapping whose keys are all matcher keywords
(`{type: integer}`, `{regex: "^[0-9]+$"}`, `{range: [0, 10]}`) is a matcher. Keywords in
one mapping all apply. Pure: compiled once at load, then `check` appends `Failure`s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tapproxy.contract.model import Location

__all__ = ["ABSENT", "KEYWORDS", "TYPES", "Failure", "Matcher", "compile_matcher",
           "json_type", "pointer_join", "same", "show"]

#: Every matcher keyword; a mapping made only of these is a matcher, not an object.
KEYWORDS = ("exact", "type", "regex", "range", "one-of", "any", "each", "min", "max",
            "fields", "additional", "optional", "nullable", "ignore")
TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")


class _Absent:
    """A field the payload does not have (distinct from a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True, slots=True)
class Failure:
    """One way a value broke a matcher: what a Mismatch is made of."""

    kind: str  # body-value | body-type | missing-field | extra-field
    where: str  # JSON pointer in the payload ("" the whole body)
    expected: str
    actual: str
    location: Location  # the matcher's node in the contract file


def pointer_join(where: str, key: str | int) -> str:
    """`where` + one JSON pointer token (RFC 6901 escapes)."""
    return f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"


def json_type(value: object) -> str:
    """The JSON type name of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(value: object, width: int = 40) -> str:
    """A short rendering of a payload or contract value for a report."""
    if value is ABSENT:
        return "absent"
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _actual(value: object) -> str:
    return f"{json_type(value)} {show(value, 30)}" if value is not ABSENT else "absent"


def _has_type(value: object, name: str) -> bool:
    kind = json_type(value)
    if name == "number":
        return kind in ("integer", "number")
    if name == "integer":  # as JSON Schema: 3.0 is an integer
        return kind == "integer" or (kind == "number" and float(value).is_integer())
    return kind == name


_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def _number_of_text(text: str) -> float | None:
    try:
        n = float(text)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def _text_has_type(text: str, name: str) -> bool:
    """Headers and query values are text: `integer` is text that reads as one."""
    if name == "string":
        return True
    if name == "integer":
        return _INTEGER_TEXT.fullmatch(text.strip()) is not None
    if name == "number":
        return _number_of_text(text) is not None
    if name == "boolean":
        return text.strip().lower() in ("true", "false")
    if name == "null":
        return text == ""
    return False


def same(expected: object, actual: object) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1 and objects compare whole."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same(v, actual[k])
                                                        for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(same, expected, actual))
    return type(expected) is type(actual) and expected == actual


def _text_of(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Matcher:
    """A compiled matcher node; `check` appends what `value` breaks to `out`."""

    __slots__ = ("location", "optional")

    def __init__(self, location: Location, optional: bool = False) -> None:
        self.location = location
        self.optional = optional

    def check(self, value: object, where: str, out: list[Failure]) -> None:
        raise NotImplementedError

    def accepts(self, value: object) -> bool:
        out: list[Failure] = []
        self.check(value, "", out)
        return not out

    def _fail(self, out: list[Failure], kind: str, where: str, expected: str,
              value: object) -> None:
        out.append(Failure(kind, where, expected, _actual(value), self.location))

    def _missing(self, value: object, where: str, out: list[Failure]) -> bool:
        """True when `value` is absent (a failure unless optional): nothing more to do."""
        if value is ABSENT:
            if not self.optional:
                out.append(Failure("missing-field", where, "present", "absent",
                                   self.location))
            return True
        return False


class _Exact(Matcher):
    __slots__ = ("text", "value")

    def __init__(self, value: object, location: Location, text: bool) -> None:
        super().__init__(location)
        self.value, self.text = value, text

    def check(self, value: object, where: str, out: list[Failure]) -> None:
        if self._missing(value, where, out):
            return
        if self.text:
            if _text_of(self.value) != value:
                self._fail(out, "body-value", where, show(self.value), value)
        elif not same(self.value, value):
            kind = "body-value" if _same_kind(self.value, value) else "body-type"
            self._fail(out, kind, where, show(self.value), value)


def _same_kind(a: object, b: object) -> bool:
    ta, tb = json_type(a), json_type(b)
    numeric = ("integer", "number")
    return ta == tb or (ta in numeric and tb in numeric)


class _Items(Matcher):
    """A plain list: exactly these items, each matched in turn."""

    __slots__ = ("items",)

    def __init__(self, items: list[Matcher], location: Location) -> None:
        super().__init__(location)
        self.items = items

    def check(self, value: object, where: str, out: list[Failure]) -> None:
        if self._missing(value, where, out):
            return
        if not isinstance(value, list):
            self._fail(out, "body-type", where, "array", value)
            return
        for i, m in enumerate(self.items):
            m.check(value[i] if i < len(value) else ABSENT, pointer_join(where, i), out)
        for i in range(len(self.items), len(value)):
            out.append(Failure("extra-field", pointer_join(where, i), "no such item",
                               _actual(value[i]), self.location))


class _Fields(Matcher):
    """An object with these fields (and others only if `additional`)."""

    __slots__ = ("_tokens", "additional", "fields")

    def __init__(self, fields: dict[str, Matcher], additional: bool, location: Location,
                 optional: bool = False) -> None:
        super().__init__(location, optional)
        self.fields, self.additional = fields, additional
        # Each field's pointer suffix, escaped once rather than per value checked.
        self._tokens = [(k, pointer_join("", k), m) for k, m in fields.items()]

    def check(self, value: object, where: str, out: list[Failure]) -> None:
        if self._missing(value, where, out):
            return
        if not isinstance(value, dict):
            self._fail(out, "body-type", where, "object", value)
            return
        for key, token, m in self._tokens:
            m.check(value.get(key, ABSENT), where + token, out)
        if not self.additional:
            for key in value:
                if key not in self.fields:
                    out.append(Failure("extra-field", pointer_join(where, key),
                                       "no such field", _actual(value[key]), self.location))


class _Rule(Matcher):
    """A mapping of matcher keywords, all of which apply."""

    __slots__ = ("any", "each", "exact", "fields", "ignore", "max", "min", "nullable",
                 "one_of", "range", "regex", "text", "types")

    def __init__(self, location: Location, text: bool) -> None:
        super().__init__(location)
        self.text = text
        self.exact: Matcher | None = None
        self.types: tuple[str, ...] = ()
        self.regex: re.Pattern[str] | None = None
        self.range: tuple[float | None, float | None] | None = None
        self.one_of: list[Matcher] = []
        self.each: Matcher | None = None
        self.min: int | None = None
        self.max: int | None = None
        self.fields: _Fields | None = None
        self.any = self.ignore = self.nullable = False

    def check(self, value: object, where: str, out: list[Failure]) -> None:
        if self.ignore or self._missing(value, where, out):
            return
        if value is None and self.nullable:
            return
        if self.exact is not None:
            self.exact.check(value, where, out)
        if self.types and not any(self._typed(value, t) for t in self.types):
            self._fail(out, "body-type", where, " or ".join(self.types), value)
            return  # the rest would repeat that the type is wrong
        if self.regex is not None:
            if not isinstance(value, str):
                self._fail(out, "body-type", where, "string", value)
                return
            if self.regex.search(value) is None:
                self._fail(out, "body-value", where, f"matching /{self.regex.pattern}/",
                           value)
        if self.range is not None:
            self._check_range(value, where, out)
        if self.one_of and not any(m.accepts(value) for m in self.one_of):
            options = ", ".join(_describe(m) for m in self.one_of)
            self._fail(out, "body-value", where, f"one of {options}", value)
        if self.each is not None or self.min is not None or self.max is not None:
            self._check_items(value, where, out)
        if self.fields is not None:
            self.fields.check(value, where, out)

    def _typed(self, value: object, name: str) -> bool:
        if self.text and isinstance(value, str):
            return _text_has_type(value, name)
        return _has_type(value, name)

    def _check_range(self, value: object, where: str, out: list[Failure]) -> None:
        lo, hi = self.range  # type: ignore[misc]
        n = _number_of_text(value) if self.text and isinstance(value, str) else value
        if not _has_type(n, "number"):
            self._fail(out, "body-type", where, "number", value)
        elif (lo is not None and n < lo) or (hi is not None and n > hi):  # type: ignore
            self._fail(out, "body-value", where, _range_text(lo, hi), value)

    def _check_items(self, value: object, where: str, out: list[Failure]) -> None:
        if not isinstance(value, list):
            self._fail(out, "body-type", where, "array", value)
            return
        if self.min is not None and len(value) < self.min:
            out.append(Failure("body-value", where, f"at least {self.min} items",
                               f"{len(value)} items", self.location))
        if self.max is not None and len(value) > self.max:
            out.append(Failure("body-value", where, f"at most {self.max} items",
                               f"{len(value)} items", self.location))
        if self.each is not None:
            for i, item in enumerate(value):
                self.each.check(item, pointer_join(where, i), out)


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return f"at most {hi:g}"
    if hi is None:
        return f"at least {lo:g}"
    return f"{lo:g} to {hi:g}"


def _describe(m: Matcher) -> str:
    if isinstance(m, _Exact):
        return show(m.value, 20)
    if isinstance(m, _Rule) and m.types:
        return "|".join(m.types)
    return "…"


Locate = Callable[[str], Location]


def compile_matcher(node: object, pointer: str, locate: Locate, *, text: bool = False,
                    additional: bool = True) -> Matcher:
    """The matcher the contract node at `pointer` says (validated by the JSON Schema
    first). `text`: values are header or query text; `additional`: whether plain
    mappings allow fields they do not list. ValueError (with the pointer of the bad
    node as its second argument) for what the schema cannot say: a bad regex."""
    location = locate(pointer)
    if isinstance(node, Mapping) and node and all(k in KEYWORDS for k in node):
        return _compile_rule(node, pointer, locate, text, additional)
    if isinstance(node, Mapping):
        return _Fields({str(k): compile_matcher(v, pointer_join(pointer, k), locate,
                                                 text=text, additional=additional)
                        for k, v in node.items()}, additional, location)
    if isinstance(node, list) and not text:
        return _Items([compile_matcher(v, pointer_join(pointer, i), locate,
                                       additional=additional)
                       for i, v in enumerate(node)], location)
    return _Exact(node, location, text)


def _compile_rule(node: Mapping, pointer: str, locate: Locate, text: bool,
                  additional: bool) -> Matcher:
    rule = _Rule(locate(pointer), text)

    def sub(key: str, value: object) -> Matcher:
        return compile_matcher(value, pointer_join(pointer, key), locate, text=text,
                               additional=additional)

    rule.optional = bool(node.get("optional", False))
    rule.nullable = bool(node.get("nullable", False))
    rule.ignore = bool(node.get("ignore", False))
    rule.any = bool(node.get("any", False))
    if "exact" in node:
        rule.exact = _Exact(node["exact"], locate(pointer_join(pointer, "exact")), text)
    if "type" in node:
        t = node["type"]
        rule.types = (t,) if isinstance(t, str) else tuple(t)
    if "regex" in node:
        try:
            rule.regex = re.compile(node["regex"])
        except re.error as e:
            raise ValueError(f"bad regex: {e}", pointer_join(pointer, "regex")) from None
    if "range" in node:
        lo, hi = node["range"]
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"range [{lo}, {hi}]: the low end is above the high end",
                             pointer_join(pointer, "range"))
        rule.range = (lo, hi)
    options = pointer_join(pointer, "one-of")
    rule.one_of = [compile_matcher(v, pointer_join(options, i), locate, text=text,
                                   additional=additional)
                   for i, v in enumerate(node.get("one-of", ()))]
    if "each" in node:
        rule.each = sub("each", node["each"])
    rule.min, rule.max = node.get("min"), node.get("max")
    if rule.min is not None and rule.max is not None and rule.min > rule.max:
        raise ValueError(f"min {rule.min} is above max {rule.max}", pointer)
    if "fields" in node:
        fields = node["fields"]
        rule.fields = _Fields(
            {str(k): compile_matcher(v, pointer_join(pointer_join(pointer, "fields"), k),
                                     locate, text=text, additional=additional)
             for k, v in fields.items()},
            bool(node.get("additional", additional)), locate(pointer_join(pointer, "fields")))
    return rule
