"""A few lines of a JSON payload around a JSON pointer: what a mismatch shows of the body."""

from __future__ import annotations

import json

__all__ = ["json_excerpt"]

_WIDTH = 76


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _cut(line: str) -> str:
    return line if len(line) <= _WIDTH else line[:_WIDTH - 1] + "…"


def json_excerpt(value: object, pointer: str, lines: int = 5) -> str:
    """The container holding `pointer`'s value, pretty-printed, cut to `lines` lines
    around that value (the container's head when the value is absent)."""
    tokens = [_unescape(t) for t in pointer.split("/")[1:]] if pointer else []
    parent, last = value, None
    for i, token in enumerate(tokens):
        nxt = None
        if isinstance(parent, dict) and token in parent:
            nxt = parent[token]
        elif isinstance(parent, list) and token.isdigit() and int(token) < len(parent):
            nxt = parent[int(token)]
        if nxt is None or i == len(tokens) - 1:
            last = token
            break
        parent = nxt
    if last is None:
        text = json.dumps(parent, ensure_ascii=False, indent=2, default=str).splitlines()
        return "\n".join(_cut(line) for line in text[:lines])
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        item = json.dumps(parent[int(last)], ensure_ascii=False, default=str)
        return _cut(f"[{last}]: {item}")
    if not isinstance(parent, dict):
        return _cut(json.dumps(parent, ensure_ascii=False, default=str))
    # Only the keys near the one wanted: a large object is not printed whole.
    keys = list(parent)
    at = keys.index(last) if last in parent else 0
    lo = max(0, min(at - (lines - 1) // 2, len(keys) - lines))
    shown = keys[lo:lo + lines]
    out = ["{" if lo == 0 else "{ …"]
    for i, k in enumerate(shown, lo):
        comma = "," if i < len(keys) - 1 else ""
        out.append(f"  {json.dumps(k, ensure_ascii=False)}: "
                   f"{json.dumps(parent[k], ensure_ascii=False, default=str)}{comma}")
    out.append("}" if lo + lines >= len(keys) else "  … }")
    return "\n".join(_cut(line) for line in out)
