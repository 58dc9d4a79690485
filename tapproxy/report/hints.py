"""Hints for the failure section: what the capture suggests but does not establish.

A service started outside tapproxy's knowledge is seen as a callee only at its address
(127.0.0.1:5002), and as a caller only under its proxy user (orders). Nothing ties the
two, so the call tree cannot nest its calls under the requests it served. When the
timing points at one caller, say so, and let the user name it: never rename silently.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from tapproxy.capture.model import Exchange
from tapproxy.report.parties import callee_with_port

__all__ = ["callee_with_port", "unnamed_callee_hints"]


def _inside(x: Exchange, outer: Sequence[Exchange]) -> bool:
    start = x.timing.request_start
    return any(o.timing.request_start <= start <= o.timing.end for o in outer)


def unnamed_callee_hints(exchanges: Sequence[Exchange], flag: str = "--service") -> list[str]:
    """Two lines for each unnamed callee address whose requests hold, every time, the
    calls of exactly one proxy-credential caller that is never itself seen as a callee:
    the second is the option (`flag NAME=ADDRESS`) that names it."""
    by_address: dict[str, list[Exchange]] = {}
    for x in exchanges:
        if x.callee.source == "host":
            by_address.setdefault(x.callee.name, []).append(x)
    callees = {x.callee.name for x in exchanges}
    calls_by: dict[str, list[Exchange]] = {}
    for x in exchanges:
        if x.caller.source == "proxy-auth" and x.caller.name not in callees:
            calls_by.setdefault(x.caller.name, []).append(x)
    hints = []
    for address, served in by_address.items():
        fits = [name for name, calls in calls_by.items()
                if all(_inside(c, served) for c in calls)
                and not any(s.caller.name == name for s in served)]
        if len(fits) == 1:
            x = fits[0]
            # Two lines, so the section stays within 80 columns.
            hints += [f"{address} may be {x}: {x}'s calls happen only inside requests to it",
                      f"  to name it: {flag} {x}={address}"]
    return hints
