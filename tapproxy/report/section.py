"""The `tapproxy` section of a failing test's pytest report, as plain 80-column lines.

It puts together what other parts computed: the failure story's lines (the call tree
with the root marked, consequences), the root service's log lines and resource figures
from the test's time window, and where the capture is. Pure: no I/O.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from tapproxy.capture.model import Exchange, ResourceSample, ServiceLog
from tapproxy.report.columns import command_lines, cut_middle
from tapproxy.report.logs import pick_logs
from tapproxy.report.parties import party_name
from tapproxy.report.printable import printable

__all__ = ["ServiceWindow", "call_lines", "failure_section", "resource_summary",
           "run_summary"]

WIDTH = 80


@dataclass(frozen=True, slots=True)
class ServiceWindow:
    """One service's log lines and resource samples while a test ran."""

    service: str
    logs: Sequence[ServiceLog]
    samples: Sequence[ResourceSample]


def _edge(x: Exchange) -> str:
    return f"{party_name(x.caller)} → {party_name(x.callee)}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.0f} ms" if ns >= 10_000_000 else f"{ns / 1e6:.1f} ms"


def call_lines(exchanges: Sequence[Exchange], width: int = WIDTH, limit: int = 30) -> list[str]:
    """The exchanges in time order, one line each (no analysis: every call, unmarked)."""
    ordered = sorted(exchanges, key=lambda x: (x.timing.request_start, x.id))
    lines = []
    for n, x in enumerate(ordered[:limit], 1):
        outcome = x.error.kind if x.error else (str(x.status) if x.status else "-")
        right = f" {outcome:>6} {_ms(x.timing.duration_ns):>8}"
        left = printable(f"{n:>3} {_edge(x)}  {x.request.method} "
                         f"{x.route or x.request.path_only}")
        lines.append(_fit(left, width - len(right)).ljust(width - len(right)) + right)
    if len(ordered) > limit:
        lines.append(f"    … {len(ordered) - limit} more calls")
    return lines


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def resource_summary(samples: Sequence[ResourceSample]) -> str:
    """Peak CPU and memory, last threads and fds, over the samples of one service."""
    if not samples:
        return "no resource samples"
    last = samples[-1]
    fds = "" if last.fds is None else f", {last.fds} fds"
    return (f"cpu peak {max(s.cpu_percent for s in samples):.0f}%, rss peak "
            f"{_mib(max(s.rss for s in samples))}, {last.threads} thread"
            f"{'s' * (last.threads != 1)}{fds} "
            f"({len(samples)} sample{'s' * (len(samples) > 1)})")


def _service_lines(w: ServiceWindow, since: int, width: int, max_logs: int) -> list[str]:
    lines = [_fit(printable(f"{w.service}: {resource_summary(w.samples)}"), width)]
    if not w.logs:
        lines.append("  (no log lines while the test ran)")
        return lines
    shown = pick_logs(w.logs, max_logs)  # error lines first: the headline stays
    if len(w.logs) > len(shown):
        lines.append(f"  … {len(w.logs) - len(shown)} of {len(w.logs)} lines left out "
                     "(error lines kept)")
    for r in shown:
        mark = "!" if r.stream == "stderr" else " "
        offset = f"+{(r.timestamp - since) / 1e6:.0f}ms" if r.timestamp >= since else ""
        lines.append(_fit(printable(f"  {offset:>8} {mark} {r.line}"), width))
    return lines


def failure_section(story: Sequence[str], since: int, services: Sequence[ServiceWindow] = (),
                    paths: Sequence[tuple[str, str]] = (), width: int = WIDTH,
                    max_logs: int = 12, test: str | None = None) -> str:
    """The whole section: `story` lines, then each service's window (log lines timed from
    `since`, the test's start; `!` marks stderr; error lines kept first), then the paths,
    and with `test` and a capture path the command that prints the log lines whole."""
    lines = list(story)
    for w in services:
        lines.append("")
        lines.extend(_service_lines(w, since, width, max_logs))
    if paths:
        lines.append("")
        # A path is never cut or split: it is there to be copied (and found by tools).
        lines.extend(f"{label}: {path}" for label, path in paths)
    # With a running tapproxy, the services' lines are in the plugin's own capture,
    # which holds no test cases: all of them, then.
    own = dict(paths).get("services' output")
    capture = dict(paths).get("capture")
    logged = [w for w in services if w.logs]  # no line shown, none to print whole
    if logged and capture is not None and test is not None:
        lines.append("the log lines whole (lines above are cut to 80 columns):")
        argv = (["tapproxy", "show", own, "--logs"] if own is not None
                else ["tapproxy", "show", capture, "--logs", "--test", test])
        if len(logged) == 1:
            argv += ["--service", logged[0].service]
        lines.extend(command_lines(argv, width))
    return "\n".join(lines)


def run_summary(failures: Sequence[tuple[str, str]], quiet: int, capture: str,
                width: int = WIDTH, why_args: Sequence[str] = ()) -> list[str]:
    """The end-of-run summary: each failing test's node id, then its first point of
    failure wrapped below it; how many tests sent nothing; the capture and the command
    (with `why_args`) that explains every failing test again. Lines within `width`."""
    lines = []
    for nodeid, first in failures:
        lines.append(cut_middle(printable(nodeid), width))
        lines.extend(textwrap.wrap(printable(first), width, initial_indent="  ",
                                   subsequent_indent="    "))
    if quiet:
        lines.append(f"{quiet} test{'s' * (quiet > 1)} sent nothing through the proxy "
                     "(see the warnings)")
    lines.append(f"capture: {capture}")
    if failures:
        lines.append("every failing test explained again:")
        lines.extend(command_lines(["tapproxy", "why", capture, *why_args], width))
    return lines
