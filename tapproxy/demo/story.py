"""What `tapproxy demo` prints and writes: pytest's own failure section, the figures
per edge, then spans.json (and the report) beside the capture, and what to open next."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from tapproxy.analysis.metrics import Metrics
from tapproxy.atomic import atomic_output
from tapproxy.capture.format import open_capture
from tapproxy.capture.model import Exchange
from tapproxy.demo.requirements import missing_requirements
from tapproxy.demo.session import run_suite
from tapproxy.errors import DemoError
from tapproxy.report.parties import as_shown
from tapproxy.report.stats import stats_lines
from tapproxy.spans.export import write_otlp_json
from tapproxy.spans.stream import spans_of_capture

__all__ = ["CAPTURE", "SPANS", "tell_story"]

CAPTURE = "demo.tap"
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
        raise DemoError(f"the demo's pytest session ended with exit code "
                        f"{run.returncode}: two of its tests should have failed")
    say(textwrap.fill(" ".join(run.command), 78, initial_indent="$ ",
                      subsequent_indent="    ", break_on_hyphens=False))
    # pytest's own failure section: the failing tests with tapproxy's story, the summary.
    at = run.output.find(_FAILURES)
    say(run.output[run.output.rfind("\n", 0, at) + 1:].rstrip() if at >= 0 else run.output)
    say("")
    say("\n".join(_edge_lines(capture)).rstrip())
    with atomic_output(directory / SPANS) as out:
        for group in spans_of_capture(capture):
            write_otlp_json(group.spans, out)
    say(f"\nwritten: {CAPTURE} (every exchange), {SPANS} (OTLP JSON)")
    say(f"open next: tapproxy show {CAPTURE} --errors, then --exchange N for one call\n"
        f"           tapproxy spans {CAPTURE} --tree (or --otlp http://localhost:4318)")


def _edge_lines(capture: Path) -> list[str]:
    metrics = Metrics()
    with open_capture(capture) as reader:
        for r in reader:
            if isinstance(r, Exchange):
                metrics.add(as_shown(r))
    return stats_lines(metrics, ("edge",))
