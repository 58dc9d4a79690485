"""What kind of volatile value a JSON leaf or path segment is: ids, times, tokens.

A value of a kind differs from run to run however deterministic the service is, so
every comparison (baseline, diff, replay matching, contract drafting) masks it.
"""

from __future__ import annotations

import re

__all__ = ["mask_text", "value_kind"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# ISO 8601 date and time (a bare date is left alone: birthdays and due dates are data).
_ISO = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
# RFC 1123, as in Date and Last-Modified headers: "Mon, 07 Dec 2026 20:57:04 GMT".
_RFC1123 = (r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
            r"|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT")

_A = re.ASCII  # \d as 0-9 only: a string of Arabic-Indic digits is no epoch
_UUID_RE = re.compile(_UUID)
_TIME_RE = re.compile(f"{_ISO}|{_RFC1123}", _A)
_EPOCH_RE = re.compile(r"\d{10,13}(?:\.\d+)?", _A)
_HEX_RE = re.compile(r"(?=[a-f]*\d)[0-9a-f]{16,}|(?=[A-F]*\d)[0-9A-F]{16,}", _A)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,}={0,2}")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_CLASS_CHANGE = re.compile(r"(?<=[a-z])(?=[^a-z])|(?<=[A-Z])(?=[^A-Z])|(?<=\d)(?=\D)",
                           _A)

# Inside free text only the unmistakable kinds are masked (no tokens: prose has long
# words), longest alternatives first so a UUID is not masked as two hex runs.
_IN_TEXT = re.compile(rf"(?P<uuid>{_UUID})|(?P<timestamp>{_ISO}|{_RFC1123})"
                      r"|\b(?P<epoch>\d{10,13})\b|\b(?=[a-fA-F]*\d)(?P<hex>[0-9a-fA-F]{16,})\b",
                      _A)
# What every kind above contains: a year or epoch's 4 digits, a UUID's first 8, a hex run.
_MAYBE_IN_TEXT = re.compile(r"\d{4}|[0-9a-fA-F]{8}-|[0-9a-fA-F]{16}", _A)


def _is_token(s: str) -> bool:
    """Random-looking: digits spread through letters, not a camelCase or snake_case name."""
    if _JWT_RE.fullmatch(s):
        return True
    if not _TOKEN_RE.fullmatch(s):
        return False
    digits = sum(c.isdigit() for c in s)
    if digits < max(2, len(s) // 10) or digits == len(s.rstrip("=")):
        return False
    # Random base64 changes character class at about two of three characters; a name
    # like getOrderDetailsForCustomerV2 has too few digits, order_2024 too few changes.
    return len(_CLASS_CHANGE.findall(s)) >= len(s) // 4


def value_kind(v: object) -> str | None:
    """uuid | timestamp | epoch | hex-token | token for a volatile-looking value, else None."""
    if isinstance(v, str):
        n = len(v)
        if n < 10:
            return None
        if n == 36 and _UUID_RE.fullmatch(v):
            return "uuid"
        c = v[0]
        if c.isdigit():
            if _EPOCH_RE.fullmatch(v):
                return "epoch"
            if n >= 16 and _TIME_RE.fullmatch(v):
                return "timestamp"
        elif n == 29 and _TIME_RE.fullmatch(v):
            return "timestamp"
        if n >= 16 and _HEX_RE.fullmatch(v):
            return "hex-token"
        if n >= 20 and _is_token(v):
            return "token"
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return "epoch" if 1_000_000_000 <= v < 10_000_000_000_000 else None
    if isinstance(v, float):
        return "epoch" if 1_000_000_000 <= v < 10_000_000_000_000 else None
    return None


def _kind_in_text(m: re.Match[str]) -> str:
    return f"<noise:{'hex-token' if m.lastgroup == 'hex' else m.lastgroup}>"


def mask_text(text: str) -> str:
    """`text` with UUIDs, timestamps, epochs and long hex runs inside it as <noise:KIND>."""
    if not _MAYBE_IN_TEXT.search(text):  # most strings: nothing to mask, no substitution
        return text
    return _IN_TEXT.sub(_kind_in_text, text)
