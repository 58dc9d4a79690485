"""Hints for the failure section: what the capture suggests but does not establish.

A service started outside tapproxy's knowledge may be seen as a callee only at its
address (127.0.0.1:5002), and as a caller only under its proxy user (orders). Where the
timing leaves one answer, the call tree lets the address stand for that caller
(`CallTree.aliases`, marked `inferred`); the hint says so and gives the option that
would name it for certain: never renamed silently. Pure: no I/O.
"""

from __future__ import annotations

from tapproxy.analysis.calltree import CallTree
from tapproxy.report.parties import callee_with_port

__all__ = ["callee_with_port", "unnamed_callee_hints"]


def unnamed_callee_hints(tree: CallTree, flag: str = "--service") -> list[str]:
    """Two lines for each unnamed callee address the tree took for one caller: what the
    timing suggests, and the option (`flag NAME=ADDRESS`) that names it."""
    hints = []
    for address, name in tree.aliases.items():
        # Two lines, so the section stays within 80 columns. The address may also be a
        # service that called `name` around tapproxy: the timing cannot tell.
        hints += [f"{address} may be {name}: {name}'s calls happen only inside requests "
                  "to it", f"  if so, name it: {flag} {name}={address}"]
    return hints
