"""`tapproxy why`, `stats` and `demo`: what went wrong, the figures, the built-in demo."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import (
    _DEFAULT_CONFDIR,
    Confdir,
    Services,
    _callee_names,
    _check_tail,
    _fail,
    app,
)
from tapproxy.cli.progress import reading


@app.command()
def why(
    capture: Path,
    test: Annotated[str | None, typer.Option(
        help="The test (node id or glob); default: every test with a failure.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per test.")]
    = False,
    baseline: Annotated[Path | None, typer.Option(
        help="A passing capture of the same test: name where this run first differs.")]
    = None,
    budget: Annotated[list[str] | None, typer.Option(
        help="DURATION or [SERVICE:]/route/{param}=DURATION: a slower call is a failure.")]
    = None,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: group calls by this route.")] = None,
    service: Services = None,
    contract: Annotated[list[str] | None, typer.Option(
        help="[SERVICE=]FILE: a call that breaks it is a failure (repeatable).")] = None,
) -> None:
    """Explain a failing test: its call tree, the first point of failure and what followed."""
    from tapproxy.analysis.budget import parse_budget
    from tapproxy.analysis.failure import first_failure
    from tapproxy.analysis.grouping import runs_by_test
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.index import records_of_tests
    from tapproxy.capture.routes import RouteTable
    from tapproxy.capture.select import TestIndex, test_matches
    from tapproxy.contract.incremental import check_test
    from tapproxy.report.hints import unnamed_callee_hints
    from tapproxy.report.mismatches import failure_details
    from tapproxy.report.parties import as_shown
    from tapproxy.report.printable import json_line
    from tapproxy.report.story import no_root_line, story_json, story_lines

    limits = parse_budget(budget or ())
    contracts = []
    if contract:  # the loaders import YAML and the OpenAPI parser: only when asked for
        from tapproxy.contract.load import load_contracts

        contracts = load_contracts(contract)  # a bad file: one line, before any output
    # With contracts, parties are named as `check` names them (a process one name in all
    # its records, which takes a first pass), so both find the same mismatches.
    routes = _callee_names(service, RouteTable(tuple(route or ())) or None,
                           capture if contracts else None)
    told = total = printed = 0
    after_story = False  # one-line answers follow each other; a story stands apart
    with contextlib.ExitStack() as stack:
        # Read once up front (a bad baseline is an error before any output), keeping
        # only where each test's exchanges are.
        baselines = None if baseline is None else TestIndex(
            stack.enter_context(open_capture(baseline)), only=test)

        def baseline_of(name: str | None) -> list | None:
            if baselines is None:
                return None
            # Callees named as in this run's story (below).
            return [as_shown(routes(x) if routes else x) for x in baselines.exchanges(name)]

        reader = stack.enter_context(open_capture(capture))
        source = reader
        if test is not None:  # its records only: from the capture's index when it has one
            source = (r for _, r in records_of_tests(reader, lambda n: test_matches(test, n)))
        records = map(routes, source) if routes else source
        records = stack.enter_context(reading(records, reader))
        for run in runs_by_test(records, only=test):
            if run.name is None and (test is not None or total):
                # Calls outside the tests beside them are no test's story; a capture with
                # no test at all (`tapproxy record`) is one story of all its calls.
                continue
            total += 1
            if (test is None and not limits and baselines is None and not contracts
                    and run.outcome not in ("failed", "error")
                    and not any(x.failed or (x.status or 0) >= 400 for x in run.exchanges)):
                continue  # a passing test where nothing failed: no story, as below, sooner
            # Contracts name parties as recorded: checked before they are renamed below.
            mismatches = check_test(run.exchanges, contracts, run.name) if contracts else []
            # Parties named as printed (IP:PORT, ?IP), also in what the story says of them.
            exchanges = [as_shown(x) for x in run.exchanges]
            story = first_failure(exchanges, test=run.name, outcome=run.outcome,
                                  budget=limits or None, contract=failure_details(mismatches),
                                  baseline=baseline_of(run.name))
            if test is None and story.root is None and story.uncertain is None \
                    and not mismatches:
                if run.outcome not in ("failed", "error"):
                    continue  # a passing test: what it handled is not a failure
                # A failed test with nothing to blame is still named, in one line.
                if as_json:
                    print(json_line({**story_json(story, mismatches), "hints": []}))
                else:
                    if after_story:
                        print()
                    print(no_root_line(story))
                printed, after_story = printed + 1, False
                continue
            told += 1
            hints = unnamed_callee_hints(story.tree)
            if as_json:
                print(json_line({**story_json(story, mismatches), "hints": hints}))
            else:
                if printed:
                    print()
                print("\n".join(story_lines(story, capture=str(capture),
                                            mismatches=mismatches) + hints))
            printed, after_story = printed + 1, True
        _check_tail(reader)
    if test is not None and total == 0:
        raise _fail(f"{capture}: no test {test!r}")
    if test is None and not as_json:
        print(f"{told} of {total} tests with a failure to explain" if total or told else
              f"{capture}: no exchange to explain", file=sys.stderr)

@app.command()
def stats(
    capture: Path,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    by: Annotated[list[str] | None, typer.Option(
        help="test, edge or route (repeatable); default: all three.")] = None,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: group calls by this route.")] = None,
    service: Services = None,
) -> None:
    """Count, error rate, throughput, latency percentiles and bytes per edge, route, test."""
    from tapproxy.analysis.metrics import Metrics
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import Exchange, Tunnel
    from tapproxy.capture.routes import RouteTable
    from tapproxy.report.parties import as_shown
    from tapproxy.report.printable import json_line
    from tapproxy.report.stats import TunnelTally, metrics_json, stats_lines

    dims = tuple(by or ("edge", "route", "test"))
    for d in dims:
        if d not in ("test", "edge", "route"):
            raise _fail(f"bad --by {d!r}: expected test, edge or route")
    routes = _callee_names(service, RouteTable(tuple(route or ())) or None, capture)
    metrics, tunnels = Metrics(), TunnelTally()
    with open_capture(capture) as reader, reading(reader, reader) as records:
        for r in records:
            if isinstance(r, Exchange):
                # Parties as every output names them: ?IP for an address-only caller.
                metrics.add(as_shown(routes(r) if routes else r))
            elif isinstance(r, Tunnel):
                tunnels.add(r)
        # A capture cut short (a killed recorder, or one still being written): the
        # figures of its complete records first, then where it stopped, as every reader.
        if as_json:
            print(json_line(metrics_json(metrics, dims, tunnels)))
        else:
            print("\n".join(stats_lines(metrics, dims, tunnels)))
        _check_tail(reader)


@app.command()
def demo(confdir: Confdir = _DEFAULT_CONFDIR) -> None:
    """A shop of four services under a real pytest --tapproxy session: the whole story.

    Writes demo.tap, report.html and spans.json in the current directory; exit 0 when
    the story is told (two of the shop's tests fail on purpose)."""
    from tapproxy.demo import tell_story

    tell_story(Path.cwd(), confdir.expanduser(), print)
