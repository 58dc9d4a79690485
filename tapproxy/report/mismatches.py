"""Contract mismatches where the failure story tells them: the root's `why:` line, the
lines under the root, the end of a pytest run, JUnit properties and JSON.

Compact by design: the story names the call (`#N`), so a mismatch is its place, what
was expected and what came, and where the contract says so. `tapproxy check` gives the
full report. Pure: no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tapproxy.capture.model import Exchange
from tapproxy.contract.model import MISMATCH_KINDS, Location, Mismatch
from tapproxy.report.columns import command_lines, cut_middle
from tapproxy.report.printable import printable

__all__ = ["call_label", "check_command", "failure_details", "mismatch_json", "mismatch_lines",
           "mismatch_text", "passing_summary", "summary_line"]

WIDTH = 80


def mismatch_text(m: Mismatch) -> str:
    """`/qty: expected integer, got "3"`; the contract's own message where it gave no
    expected and actual (a missing interaction, say)."""
    if not (m.expected or m.actual):
        return m.message
    where = m.where or MISMATCH_KINDS.get(m.kind, m.kind)
    return f"{where}: expected {m.expected or '-'}, got {m.actual or '-'}"


def failure_details(mismatches: Iterable[Mismatch]) -> dict[str, str]:
    """Exchange id → one line for `first_failure(contract=…)`: the first mismatch of the
    exchange, and `(+N more)` when it broke the contract in more places."""
    by_exchange: dict[str, list[Mismatch]] = {}
    for m in mismatches:
        if m.exchange_id is not None:
            by_exchange.setdefault(m.exchange_id, []).append(m)
    return {xid: mismatch_text(ms[0]) + (f" (+{len(ms) - 1} more)" if len(ms) > 1 else "")
            for xid, ms in by_exchange.items()}


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent,
                         subsequent_indent=indent + "  ") or [indent.rstrip()]


def mismatch_lines(mismatches: Sequence[Mismatch], numbers: Mapping[str, int],
                   root: str | None = None, width: int = WIDTH, limit: int = 8,
                   excerpt_lines: int = 3, base: Path | None = None) -> list[str]:
    """`contract mismatches:` then each mismatch: the call's `#N` (`numbers`: exchange id
    → N; a whole-test mismatch has none), its side, place, expected and actual; the
    contract's file:line:column (never cut: it is there to be opened); a few lines of
    the payload. The root's (`root`: its exchange id) first; at most `limit`. Contract
    paths under `base` (default: the working directory) are shown relative to it."""
    if not mismatches:
        return []
    base = (base or Path.cwd()).resolve()
    ordered = sorted(mismatches, key=lambda m: (
        m.exchange_id != root or root is None,
        numbers.get(m.exchange_id or "", 1 << 30)))
    lines = [f"contract mismatches ({len(ordered)}):"]
    # Calls that broke the contract the same way are one entry: `#2 (also #4, #6)`.
    same: dict[tuple, list[int]] = {}
    firsts: list[Mismatch] = []
    for m in ordered:
        n = numbers.get(m.exchange_id or "")
        key = (m.kind, m.side, m.where, m.expected, m.actual, str(m.contract))
        if n is not None and key in same:
            same[key].append(n)
            continue
        same[key] = []
        firsts.append(m)
    for m in firsts[:limit]:
        n = numbers.get(m.exchange_id or "")
        also = same[(m.kind, m.side, m.where, m.expected, m.actual, str(m.contract))]
        call = f"#{n} " if n is not None else ""
        if also:
            call = f"#{n} (also {', '.join(f'#{k}' for k in also[:6])}"
            call += f", … {len(also) - 6} more) " if len(also) > 6 else ") "
        side = f"{m.side} " if m.side else ""
        lines.extend(_wrap(printable(f"{call}{side}{mismatch_text(m)}"), width, "  "))
        item = f" ({m.item})" if m.item else ""
        where = _shown_location(m.contract, base)
        # The item ("(product)", "(GET /items/{id})") stays whole after a long path: a
        # path line is one to copy, and the item says which part of the contract it is.
        item = printable(item)
        lines.append(printable(f"      contract: {where}") + cut_middle(
            item, max(min(len(item), 40), width - 16 - len(where))))
        for line in _around_mark(m.excerpt.splitlines(), excerpt_lines):
            lines.append(cut_middle(printable(f"      │ {line}"), width))
    if len(firsts) > limit:
        lines.append(f"  … {len(firsts) - limit} more (tapproxy check lists them all)")
    return lines


def _shown_location(loc: Location, base: Path) -> str:
    """`loc` with its file relative to `base` when under it (as `tapproxy check` shows
    it), else as loaded."""
    path = loc.file
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(base)
    return str(Location(path, loc.line, loc.column))


def _around_mark(lines: list[str], count: int) -> list[str]:
    """`count` lines of an excerpt, around the line its maker marked (`◀`) if any."""
    marked = next((i for i, line in enumerate(lines) if "◀" in line), 0)
    start = max(0, min(marked - (count - 1) // 2, len(lines) - count))
    return lines[start:start + count]


def mismatch_json(m: Mismatch) -> dict:
    """A mismatch as `why --json` gives it: the keys of `check --format json`, and the
    line the story shows (`text`)."""
    return {"kind": m.kind, "phrase": MISMATCH_KINDS.get(m.kind, m.kind),
            "message": m.message, "text": mismatch_text(m),
            "contract": {"file": str(m.contract.file), "line": m.contract.line,
                         "column": m.contract.column},
            "item": m.item, "where": m.where, "side": m.side, "expected": m.expected,
            "actual": m.actual, "exchange_id": m.exchange_id, "test": m.test,
            "caller": m.caller, "callee": m.callee, "excerpt": m.excerpt}


def call_label(x: Exchange) -> str:
    """`orders → payments POST /charges`: a call named where no story numbers it."""
    return printable(f"{x.caller.name} → {x.callee.name} {x.request.method} "
                     f"{x.route or x.request.path_only}")


def summary_line(m: Mismatch, call: str | None = None) -> str:
    """One line: the call (`call_label`, else the mismatch's parties), then the mismatch."""
    if call is None and (m.caller or m.callee):
        call = f"{m.caller or '?'} → {m.callee or '?'}"
    return printable((f"{call}: " if call else "") + mismatch_text(m))


def check_command(capture: str, contracts: Sequence[str]) -> list[str]:
    """The argv of the `tapproxy check` that lists every mismatch of a capture."""
    argv = ["tapproxy", "check", capture]
    for spec in contracts:
        argv += ["--contract", spec]
    return argv


def passing_summary(found: Sequence[tuple[str, str]], count: int, tests: int,
                    command: list[str], width: int = WIDTH, limit: int = 5) -> list[str]:
    """The end of a pytest run: how many mismatches passing tests had (`count`, in
    `tests` tests), the first few (`found`: node id, summary line), and the command
    that lists them all."""
    lines = [f"contract mismatches in passing tests: {count} in {tests} "
             f"test{'s' * (tests != 1)}"]
    last = None
    for nodeid, line in found[:limit]:
        if nodeid != last:
            lines.append(cut_middle(printable(nodeid), width))
            last = nodeid
        lines.extend(_wrap(line, width, "  "))
    if count > min(limit, len(found)):
        lines.append(f"  … {count - min(limit, len(found))} more")
    lines.append("all of them:")
    lines.extend(command_lines(command, width))
    return lines
