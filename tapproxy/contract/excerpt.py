"""The few lines of a payload around the place a mismatch names, for a report.

Only the container holding that place is laid out (one field or item a line, values
compact and cut), so a large body costs no more than the object the mismatch is in.
Any contract kind can use it: it takes a parsed JSON value and a JSON pointer.
"""

from __future__ import annotations

import json

__all__ = ["payload_excerpt"]


# What str.splitlines() breaks at and JSON leaves as is: escaped, so that an excerpt's
# lines are its "\n"-separated ones wherever it is split (the reports split it).
_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).translate(_BREAKS)


def _compact(value: object, width: int) -> str:
    text = _dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _tokens(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _step(container: object, token: str) -> tuple[bool, object]:
    if isinstance(container, dict) and token in container:
        return True, container[token]
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return True, container[int(token)]
    return False, None


def payload_excerpt(body: object, pointer: str, width: int = 72, context: int = 2) -> str:
    """Lines of `body` (parsed JSON, or text) around `pointer`: its parent container
    laid out a member a line, the member at `pointer` marked with `◀`; at most
    2 * `context` + 1 member lines, each within `width` columns."""
    if isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        lines = text.splitlines()[: 2 * context + 1]
        return "\n".join(_compact_text(line.translate(_BREAKS), width) for line in lines)
    tokens = _tokens(pointer)
    parent, key = body, None
    for i, token in enumerate(tokens):
        found, value = _step(parent, token)
        if not found or i == len(tokens) - 1 or not isinstance(value, dict | list):
            key = token
            break
        parent = value
    if not isinstance(parent, dict | list):
        return _compact(parent, width)
    return "\n".join(_layout(parent, key, width, context))


def _compact_text(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _layout(parent: dict | list, key: str | None, width: int, context: int) -> list[str]:
    if isinstance(parent, dict):
        members = [(k, f"{_dumps(k)}: ") for k in parent]
        values = list(parent.values())
        open_, close = "{", "}"
    else:
        members = [(str(i), "") for i in range(len(parent))]
        values = list(parent)
        open_, close = "[", "]"
    at = next((i for i, (k, _) in enumerate(members) if k == key), None)
    centre = at if at is not None else 0
    lo, hi = max(0, centre - context), min(len(members), centre + context + 1)
    lines = [open_ if lo == 0 else "  …"]
    for i in range(lo, hi):
        mark = "  ◀" if i == at else ""
        comma = "," if i < len(members) - 1 else ""
        # Cut as a whole (a long key too), the mark kept in sight.
        text = f"  {members[i][1]}{_compact(values[i], width)}{comma}"
        lines.append(_compact_text(text, width - len(mark)) + mark)
    lines.append(close if hi == len(members) else "  …")
    return lines
