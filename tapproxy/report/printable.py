"""Recorded text made safe for a terminal: control characters shown as escapes.

A capture holds whatever the services and tests sent: a test name, header, path or body
with `\\x1b]0;…\\x07` in it would retitle or repaint the terminal of whoever inspects it.
Every renderer passes recorded text through `printable`, and `terminal()` is a console
that escapes whatever control character still reaches it (rich itself only drops BEL,
BS, VT, FF and CR, silently, which would hide them).
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["json_line", "printable", "safe_line", "terminal"]

# C0 and C1 controls, DEL, bidirectional overrides and isolates (they reorder what is
# shown: "Trojan Source"), and lone surrogates (undecodable bytes, surrogateescape).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
# Text shown as lines (bodies) keeps its line breaks and tabs.
_LINES = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]|\r(?!\n)")
# What may still reach the console: anything but its own line breaks.
_SEGMENT = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
# What JSON leaves raw (it escapes C0 itself).
_JSON = re.compile(f"[\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{c - 0xDC00:02x}"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str, lines: bool = False) -> str:
    """`text` with control characters as `\\x1b`-style escapes (`lines`: keep line breaks
    and tabs, for bodies)."""
    return (_LINES if lines else _ONE_LINE).sub(_escape, text)


def safe_line(line: str) -> str:
    """A line written past the console (no colours to render) escaped as the console
    would escape it: what `printable` missed still cannot reach the terminal."""
    return _SEGMENT.sub(_escape, line) if _SEGMENT.search(line) else line


def json_line(obj: object) -> str:
    """One line of JSON that is also safe to print: the characters JSON leaves raw (DEL,
    C1, bidi controls, lone surrogates) as \\u escapes."""
    return _JSON.sub(lambda m: f"\\u{ord(m.group()):04x}",
                     json.dumps(obj, ensure_ascii=False))


@functools.cache
def _escaping_console() -> type[Console]:
    # Defined on first use: rich takes a while to import, and the commands that print
    # plain lines (why, stats, the JSON outputs) never need it.
    from rich.console import Console
    from rich.segment import Segment

    class _EscapingConsole(Console):
        def render(self, renderable, options=None):
            # Recursive in rich; escaping is idempotent, so nested renderables are fine.
            for seg in super().render(renderable, options):
                if not seg.control and _SEGMENT.search(seg.text):
                    seg = Segment(_SEGMENT.sub(_escape, seg.text), seg.style)
                yield seg

    return _EscapingConsole


def terminal(stderr: bool = False) -> Console:
    """The console every human-readable output goes through."""
    return _escaping_console()(highlight=False, soft_wrap=True, stderr=stderr)
