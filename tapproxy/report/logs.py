"""Service log lines: which matter most when only a few fit, and each shown whole.

The pytest section has room for a dozen lines of 80 columns; a service's error headline
must not be the line that is left out. `show --logs` prints every line whole, wrapped.
Pure: no I/O.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from tapproxy.capture.model import ServiceLog
from tapproxy.report.printable import printable

__all__ = ["is_error_line", "log_json", "log_lines", "pick_logs"]

# What marks a line a reader looks for first, in the common runtimes' words: Python
# (Traceback, …Error:, Exception), logging levels (ERROR, FATAL, CRITICAL), Go (panic:),
# Java (Exception in thread, Caused by:), Node (Uncaught …, Error:).
_ERROR = re.compile(r"\b(?:ERROR|FATAL|CRITICAL|SEVERE|PANIC|Traceback|\w*Exception)\b|"
                    r"\bpanic:|\bCaused by:|\bUncaught\b|\w*Error:", re.IGNORECASE)


def is_error_line(line: str) -> bool:
    """Whether a log line reads as an error report (ERROR, Traceback, panic, …)."""
    return _ERROR.search(line) is not None


def pick_logs(logs: Sequence[ServiceLog], limit: int) -> list[ServiceLog]:
    """At most `limit` lines in time order: the error lines first (the latest of them
    if even those are too many), then the latest of the others."""
    if len(logs) <= limit:
        return list(logs)
    errors = [i for i, r in enumerate(logs) if is_error_line(r.line)][-limit:]
    others = [i for i, r in enumerate(logs) if not is_error_line(r.line)]
    keep = set(errors) | set(others[len(others) - (limit - len(errors)):]
                             if limit > len(errors) else ())
    return [r for i, r in enumerate(logs) if i in keep]


def _clock(ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns // 1_000_000 % 1000:03d}"


def log_lines(r: ServiceLog, width: int = 80) -> list[str]:
    """One log line whole: UTC time, service, `!` for stderr, then the text, continued on
    further lines (cut every `width` columns, nothing dropped)."""
    head = printable(f"{_clock(r.timestamp)} {r.service} {'!' if r.stream == 'stderr' else ' '} ")
    text = printable(r.line)
    room = max(20, width - len(head))
    chunks = [text[i:i + room] for i in range(0, len(text), room)] or [""]
    pad = " " * (width - room)
    return [head + chunks[0], *(pad + c for c in chunks[1:])]


def log_json(r: ServiceLog) -> dict:
    return {"kind": "log", "service": r.service, "stream": r.stream, "line": r.line,
            "timestamp": r.timestamp}
