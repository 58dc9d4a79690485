"""Scenarios on which tapproxy's Pact matcher is compared with Pact's own engine: each
matcher pact-python offers, with actual values on both sides of its verdict."""

from __future__ import annotations

from pact import match

UUID = "0e8d5b8a-4a3c-4c1e-9c1e-3f5b2e7d9a10"

#: name → (expected body with matchers, [actual bodies]); the actual bodies cover both
#: verdicts for each matcher.
BODIES = {
    "integer": ({"n": match.int(1)}, [{"n": 5}, {"n": 5.5}, {"n": "5"}]),
    "decimal": ({"n": match.decimal(1.5)}, [{"n": 2.25}, {"n": 2}]),
    "number": ({"n": match.number(1)}, [{"n": 2.5}, {"n": 3}, {"n": "2"}]),
    "string": ({"s": match.str("a")}, [{"s": "b"}, {"s": 1}]),
    "regex": ({"s": match.regex("AB-1", regex=r"[A-Z]{2}-\d+")},
              [{"s": "CD-22"}, {"s": "cd-22"}, {"s": "AB-1x"}]),
    "uuid": ({"u": match.uuid(UUID)}, [{"u": UUID.upper()}, {"u": "nope"}]),
    "boolean": ({"b": match.bool(True)}, [{"b": False}, {"b": "true"}, {"b": 1}]),
    "date": ({"d": match.date("2024-01-02")},
             [{"d": "2025-12-31"}, {"d": "2025-13-01"}, {"d": "31/12/2025"}]),
    "time": ({"t": match.time("12:34:56")}, [{"t": "23:59:59"}, {"t": "24:00:00"}]),
    "datetime": ({"t": match.datetime("2024-01-02T03:04:05+00:00")},
                 [{"t": "2025-06-07T08:09:10+0200"}, {"t": "2025-06-07T08:09:10+02:00"},
                  {"t": "2025-06-07 08:09:10"}]),
    "null": ({"x": match.null()}, [{"x": None}, {"x": 0}]),
    "include": ({"s": match.includes("ell")}, [{"s": "hello"}, {"s": "hxllo"}]),
    "type": ({"o": match.like({"a": 1, "b": "x"})},
             [{"o": {"a": 2, "b": "y"}}, {"o": {"a": "2", "b": "y"}},
              {"o": {"a": 2, "b": "y", "c": 3}}, {"o": {"a": 2}}]),
    "each like min 2": ({"l": match.each_like({"id": match.int(1)}, min=2)},
                        [{"l": [{"id": 1}, {"id": 2}, {"id": 3}]}, {"l": [{"id": 1}]},
                         {"l": [{"id": 1}, {"id": "2"}]}]),
    "each like max 2": ({"l": match.each_like("x", max=2)},
                        [{"l": ["a", "b"]}, {"l": ["a", "b", "c"]}, {"l": []}]),
    "array contains": ({"l": match.array_containing([match.int(1), "x"])},
                       [{"l": [5, "x", 9]}, {"l": ["x", 7]}, {"l": [5, "y"]}]),
    "each key": ({"m": match.each_key_matches({"ab": 1}, rules=match.regex(
        "ab", regex="[a-z]+"))}, [{"m": {"xy": 1}}, {"m": {"X1": 1}}]),
    "each value": ({"m": match.each_value_matches({"a": 1}, rules=match.int(1))},
                   [{"m": {"b": 2, "c": 3}}, {"m": {"b": "x"}}]),
    "literal": ({"a": [1, 2], "o": {"k": "v"}},
                [{"a": [1, 2], "o": {"k": "v"}}, {"a": [1, 2, 3], "o": {"k": "v"}},
                 {"a": [1], "o": {"k": "v"}}, {"a": [1, 2], "o": {}}]),
}

SCENARIOS = [(name, n, actual) for name, (_, actuals) in BODIES.items()
             for n, actual in enumerate(actuals)]

#: name → (query parameter and header matchers, [(actual query string, headers)]).
PARTS = {
    "query regex": ({"query": ("id", match.regex("12", regex=r"\d+"))},
                    [("id=345", {}), ("id=ab", {}), ("", {}), ("id=1&x=2", {})]),
    "query literal": ({"query": ("tag", "a b")}, [("tag=a+b", {}), ("tag=a%20b", {}),
                                                  ("tag=a&tag=b", {})]),
    "header regex": ({"header": ("X-Id", match.regex("12", regex=r"\d+"))},
                     [("", {"x-id": "99"}), ("", {"X-Id": "9a"}), ("", {})]),
    "header literal": ({"header": ("X-Mode", "fast")},
                       [("", {"X-MODE": "fast"}), ("", {"X-Mode": "Fast"}),
                        ("", {"X-Mode": "fast", "X-Other": "1"})]),
    "accept list": ({"header": ("Accept", "application/json, text/plain")},
                    [("", {"Accept": "application/json,text/plain"}),
                     ("", {"Accept": "text/plain, application/json"})]),
}

PART_SCENARIOS = [(name, n, actual) for name, (_, actuals) in PARTS.items()
                  for n, actual in enumerate(actuals)]


def path_of(name: str, n: int) -> str:
    return f"/{name.replace(' ', '-')}/{n}"
