"""Text shaped to a column: cut at the end or in the middle, never wider than asked.

Every line tapproxy prints fits 80 columns; these are the two ways to make a cell fit,
and the way to print a command too long for one line so that it can still be pasted.
Pure: no I/O.
"""

from __future__ import annotations

import shlex

__all__ = ["command_lines", "cut_end", "cut_middle", "short_test_name"]


def cut_end(text: str, width: int) -> str:
    """`text`, its end replaced by `…` when longer than `width`."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def cut_middle(text: str, width: int) -> str:
    """`text`, its middle replaced by `…` when longer than `width`: both ends tell
    routes and test names apart (`/orders/{id}/i…/refunds`)."""
    if len(text) <= width:
        return text
    if width < 3:
        return cut_end(text, width)
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]


def short_test_name(nodeid: str) -> str:
    """The part of a pytest node id that tells tests of one file apart: everything after
    the file (`test_checkout[visa]`, `TestShop::test_pay`); other names as they are."""
    _, sep, rest = nodeid.partition("::")
    return rest if sep and rest else nodeid


def command_lines(argv: list[str], width: int = 80, first: str = "  ",
                  rest: str | None = None) -> list[str]:
    """A shell command quoted to paste, after `first`, continued with ` \\` on lines
    starting `rest` (default: `first` and 4 spaces) where it would pass `width` (a word
    longer than a line stays whole: a path cannot be cut)."""
    rest = first + "    " if rest is None else rest
    words = [shlex.quote(a) for a in argv]
    lines = [first + words[0]]
    for w in words[1:]:
        if len(lines[-1]) + 1 + len(w) + 2 <= width:
            lines[-1] += " " + w
        else:
            lines[-1] += " \\"
            lines.append(rest + w)
    return lines
