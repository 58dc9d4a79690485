"""What `tapproxy demo` prints and writes: pytest's own failure section, the figures
per edge, then spans.json and report.html beside the capture, and what to open next."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

from tapproxy.analysis.metrics import Metrics
from tapproxy.atomic import atomic_output
from tapproxy.capture.format import open_capture
from tapproxy.capture.model import Exchange
from tapproxy.contract.load import load_contracts
from tapproxy.demo.requirements import missing_requirements
from tapproxy.demo.session import CONTRACT, CONTRACT_SPEC, run_suite
from tapproxy.errors import DemoError
from tapproxy.report.html.write import write_report
from tapproxy.report.parties import as_shown
from tapproxy.report.stats import stats_lines
from tapproxy.spans.export import write_otlp_json
from tapproxy.spans.stream import spans_of_capture

__all__ = ["CAPTURE", "REPORT", "SPANS", "tell_story"]

CAPTURE = "demo.tap"
REPORT = "report.html"
SPANS = "spans.json"
_SHOP = """\
  tests ──▶ shop ──────┬─▶ catalog    Node, fronted by tapproxy: nothing changed
  (pytest)  (aiohttp)  ├─▶ inventory  gRPC (grpcio)
                       └─▶ payments   OpenTelemetry: sends its spans to tapproxy
"""
_FAILURES = "= FAILURES ="


def tell_story(directory: Path, confdir: Path, say: Callable[[str], None]) -> None:
    """Run the shop's suite under `pytest --tapproxy`; write the outputs in `directory`."""
    missing = missing_requirements()
    if missing:
        raise DemoError(missing)
    capture = directory / CAPTURE
    say("tapproxy demo: a shop of four services, its tests run by pytest --tapproxy\n")
    say(_SHOP)
    run = run_suite(capture.absolute(), confdir)
    if run.returncode != 1 or not capture.exists():  # 1: tests failed, as they should
        say(run.output)  # the whole of it: what went wrong is in there
        raise DemoError(f"the demo's pytest run ended with exit code {run.returncode}, "
                        "not 1 (output above)")
    say(textwrap.fill(" ".join(run.command), 78, initial_indent="$ ",
                      subsequent_indent="    ", break_on_hyphens=False))
    # pytest's own failure section: the failing tests with tapproxy's story, the summary.
    at = run.output.find(_FAILURES)
    section = run.output[run.output.rfind("\n", 0, at) + 1:].rstrip() if at >= 0 \
        else run.output
    say("\n".join(_within(line) for line in section.splitlines()))
    say("")
    say("\n".join(_edge_lines(capture)).rstrip())
    with atomic_output(directory / SPANS) as out:
        for group in spans_of_capture(capture):
            write_otlp_json(group.spans, out)
    # As `tapproxy report demo.tap -o report.html --contract catalog=…` writes it: with
    # the mismatches (pytest's own report beside the capture has the calls alone).
    write_report(capture, directory / REPORT, load_contracts([CONTRACT_SPEC]))
    # The contract the failure section names (`--contract catalog=catalog.yaml`), so that
    # its `tapproxy why … --contract` hint runs here as printed.
    shutil.copyfile(CONTRACT, directory / CONTRACT.name)
    say(f"\nwritten: {CAPTURE}, {REPORT} (tapproxy report, with the contract),\n"
        f"  {CONTRACT.name} (the catalog's contract), {SPANS} (OTLP JSON),\n"
        f"  {capture.with_suffix('.html').name} (the report pytest --tapproxy leaves)")
    say(f"open next: {REPORT} in a browser (the waterfall, the map, the failures)\n"
        f"           tapproxy show {CAPTURE} --errors, then --exchange N for one call")


def _within(line: str, width: int = 80) -> str:
    """`line` cut to `width` columns, unless it names a path (one to copy whole): what
    pytest prints under load (a warning, a slow call's message) can run wider."""
    if len(line) <= width or "/" in line:
        return line
    return line[:width - 1] + "…"


def _edge_lines(capture: Path) -> list[str]:
    metrics = Metrics()
    with open_capture(capture) as reader:
        for r in reader:
            if isinstance(r, Exchange):
                metrics.add(as_shown(r))
    return stats_lines(metrics, ("edge",))
