"""Pact's date, time and timestamp matchers: Java-style patterns (`yyyy-MM-dd'T'HH:mm:ss`).

Pact writes these formats in the letters of Java's DateTimeFormatter (Pact-JVM and the Rust
core both read them so). Each pattern is turned into one anchored regular expression whose
numeric fields accept only their ranges (month 01-12, hour 00-23, ...), which is how a
value is judged without a calendar library.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["DEFAULT_FORMATS", "datetime_regex", "matches_datetime"]

#: What Pact uses when a date/time/timestamp matcher names no format.
DEFAULT_FORMATS = {"date": "yyyy-MM-dd", "time": "HH:mm:ss",
                   "timestamp": "yyyy-MM-dd'T'HH:mm:ssXXX"}

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November"
           "|December")
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"


def _range(lo: int, hi: int, width: int) -> str:
    """Digits `width` wide (at least that, when 1) for the numbers lo..hi."""
    values = [str(v).zfill(width) for v in range(lo, hi + 1)]
    values.sort(key=len, reverse=True)  # longest first, so "10" wins over "1"
    return "(?:" + "|".join(values) + ")"


def _field(letter: str, n: int) -> str:
    if letter in "yu":
        return r"\d{2}" if n == 2 else r"[+-]?\d{" + str(max(n, 1)) + ",9}"
    if letter in "ML":
        if n >= 4:
            return f"(?:{_MONTHS})"
        if n == 3:
            return "(?:" + "|".join(m[:3] for m in _MONTHS.split("|")) + ")"
        return _range(1, 12, n)
    simple = {"d": (1, 31), "D": (1, 366), "H": (0, 23), "k": (1, 24), "K": (0, 11),
              "h": (1, 12), "m": (0, 59), "s": (0, 59), "w": (1, 53), "W": (0, 5),
              "F": (1, 5), "Q": (1, 4), "q": (1, 4), "e": (1, 7), "c": (1, 7)}
    if letter in simple:
        lo, hi = simple[letter]
        if letter == "D":
            return _range(lo, hi, n) if n > 1 else r"\d{1,3}"
        if letter in "Qq" and n >= 3:
            return r"(?:Q[1-4]|[1-4](?:st|nd|rd|th) quarter)"
        return _range(lo, hi, n)
    if letter in "Ee":
        if n >= 4:
            return f"(?:{_DAYS})"
        return "(?:" + "|".join(d[:3] for d in _DAYS.split("|")) + ")"
    if letter == "a":
        return "(?:AM|PM|am|pm)"
    if letter == "G":
        return "(?:AD|BC|Anno Domini|Before Christ)"
    if letter in "SnN":
        return r"\d{" + str(n) + "}" if letter == "S" else r"\d{1,9}"
    if letter == "A":
        return r"\d{1,8}"
    if letter == "X":  # Z for zero
        return {1: r"(?:Z|[+-]\d{2}(?:\d{2})?)", 2: r"(?:Z|[+-]\d{4})",
                3: r"(?:Z|[+-]\d{2}:\d{2})", 4: r"(?:Z|[+-]\d{4}(?:\d{2})?)"}.get(
                    n, r"(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?)")
    if letter == "x":
        return {1: r"[+-]\d{2}(?:\d{2})?", 2: r"[+-]\d{4}", 3: r"[+-]\d{2}:\d{2}"}.get(
            n, r"[+-]\d{2}:?\d{2}(?::?\d{2})?")
    if letter == "Z":
        return r"[+-]\d{4}" if n <= 3 else (r"(?:GMT(?:[+-]\d{2}:\d{2})?|Z|[+-]\d{2}:\d{2})")
    if letter == "O":
        return r"GMT(?:[+-]\d{1,2}(?::\d{2})?)?"
    if letter in "zV":
        return r"[A-Za-z][A-Za-z0-9_+\-/]*"
    raise ValueError(f"unknown pattern letter {letter!r}")


@lru_cache(maxsize=256)
def datetime_regex(pattern: str) -> re.Pattern[str]:
    """The anchored regex for a Java-style pattern; ValueError names what is wrong in it."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            if pattern[i + 1:i + 2] == "'":  # '' outside quotes is a quote
                out.append("'")
                i += 2
                continue
            literal, i = [], i + 1
            while True:  # inside quotes, '' is a quote and ' ends the text
                end = pattern.find("'", i)
                if end < 0:
                    raise ValueError(f"unterminated quote in {pattern!r}")
                literal.append(pattern[i:end])
                if pattern[end + 1:end + 2] != "'":
                    i = end + 1
                    break
                literal.append("'")
                i = end + 2
            out.append(re.escape("".join(literal)))
            continue
        if ch.isascii() and ch.isalpha():
            n = 1
            while i + n < len(pattern) and pattern[i + n] == ch:
                n += 1
            out.append(_field(ch, n))
            i += n
            continue
        if ch in "[]":  # optional sections: accept with or without
            out.append("(?:" if ch == "[" else ")?")
            i += 1
            continue
        out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))


def matches_datetime(value: str, pattern: str) -> bool:
    """Whether `value` is written in `pattern` (a bad pattern matches nothing)."""
    try:
        return datetime_regex(pattern).fullmatch(value) is not None
    except (ValueError, re.error):
        return False
