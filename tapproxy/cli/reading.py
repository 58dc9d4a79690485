"""`tapproxy show`, `export`, `import` and `spans`: reading and converting captures."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy import __version__
from tapproxy.atomic import atomic_output
from tapproxy.cli.app import (
    NoRedact,
    RedactHeaders,
    RedactJson,
    RedactNames,
    Services,
    _callee_names,
    _check_tail,
    _fail,
    _out,
    app,
)


@app.command()
def show(
    capture: Path,
    test: Annotated[str | None, typer.Option(help="Only this test (glob).")] = None,
    service: Annotated[list[str] | None, typer.Option(
        help="NAME: only calls from/to this service; NAME=HOST[:PORT]: name the callee at "
             "that address, as `record --service` would have (repeatable).")] = None,
    errors: Annotated[bool, typer.Option(
        help="Only failed exchanges (errors, 4xx, 5xx, gRPC status not OK) and failed "
             "tunnels.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per exchange or tunnel (its `kind` says which).")]
    = False,
    exchange: Annotated[str | None, typer.Option(
        help="Show exchange N (its # in the table), tunnel tN, the one whose id starts "
             "so (4+ characters), or TEST#N: call #N of that test as `why` numbers "
             "them.")] = None,
    proto_descriptor: Annotated[Path | None, typer.Option(
        help="Decode gRPC messages by name with this `protoc --include_imports "
             "--descriptor_set_out` file (else by field number).")] = None,
    logs: Annotated[bool, typer.Option(
        help="Print the services' log lines whole instead (with --test: those while "
             "it ran; with --service: that service's).")] = False,
) -> None:
    """List the exchanges of a capture, and the connections not parsed as HTTP (tunnels,
    rows t1, t2, …), or show one in full, or the services' log lines."""
    filters = [s for s in service or () if "=" not in s]
    if len(filters) > 1:
        raise _fail(f"--service: one service to show at a time, not {', '.join(filters)}")
    only = filters[0] if filters else None
    if logs:
        if exchange is not None or errors or proto_descriptor is not None:
            raise _fail("--logs prints log lines: it takes --test, --service and --json "
                        "only")
        _show_logs(capture, test, only, as_json)
        return
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.index import records_of_tests
    from tapproxy.capture.model import TestCase, Tunnel
    from tapproxy.capture.protobuf import ProtoSchema
    from tapproxy.capture.select import numbered_rows, select, test_matches
    from tapproxy.report.jsonl import exchange_json, tunnel_json
    from tapproxy.report.printable import json_line
    from tapproxy.report.text import print_exchange, print_table, print_tunnel

    schema = None if proto_descriptor is None else ProtoSchema(proto_descriptor)
    names = _callee_names([s for s in service or () if "=" in s], capture=capture)
    console = _out()
    with open_capture(capture) as reader:
        tests: dict[str, TestCase] = {}

        def records():
            for r in reader:
                if isinstance(r, TestCase):
                    tests[r.name] = r
                yield names(r) if names else r

        def indexed():
            for row, r in records_of_tests(reader, lambda n: test_matches(test, n)):
                if isinstance(r, TestCase):
                    tests[r.name] = r
                else:
                    yield row, names(r) if names else r

        # One test's rows: from the capture's index when it has one.
        numbered = indexed() if test is not None else numbered_rows(records())
        rows = select(numbered, test, only, errors)
        if exchange is not None:
            found = (_find_in_test(rows, *_test_call(exchange)) if _test_call(exchange)
                     else _find_exchange(rows, exchange))
            for _ in numbered:  # test outcomes are written after their exchanges
                pass
            _check_tail(reader)
            if found is None:
                raise _fail(f"{capture}: no exchange {exchange!r}")
            n, x = found
            if isinstance(x, Tunnel):
                print_tunnel(str(n), x, console)
            else:
                print_exchange(n, x, console, tests, schema)
                _warn_undescribed(schema, proto_descriptor, x)
        elif as_json:
            for n, x in rows:
                row = tunnel_json(n, x) if isinstance(x, Tunnel) else exchange_json(n, x)
                print(json_line(row))
        else:
            count = print_table(rows, console)
            if count == 0:
                console.print("(no exchanges)", style="dim")
        _check_tail(reader)


def _show_logs(capture: Path, test: str | None, service: str | None, as_json: bool) -> None:
    """Every log line of the services (of `service`, glob), while `test` (glob) ran."""
    from fnmatch import fnmatchcase

    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import ServiceLog, TestCase
    from tapproxy.capture.select import test_matches
    from tapproxy.report.logs import log_json, log_lines
    from tapproxy.report.printable import json_line

    windows: list[tuple[int, float]] | None = None
    if test is not None:  # test cases are written when they end: find them first
        with open_capture(capture) as reader:
            windows = [(r.started, r.ended if r.ended is not None else float("inf"))
                       for r in reader
                       if isinstance(r, TestCase) and (r.name == test
                                                       or test_matches(test, r.name))]
        if not windows:
            raise _fail(f"{capture}: no test {test!r}")
    count = 0
    with open_capture(capture) as reader:
        for r in reader:
            if not isinstance(r, ServiceLog):
                continue
            if service is not None and not (r.service == service
                                            or fnmatchcase(r.service, service)):
                continue
            if windows is not None and not any(a <= r.timestamp <= b for a, b in windows):
                continue
            count += 1
            if as_json:
                print(json_line(log_json(r)))
            else:
                print("\n".join(log_lines(r)))
        if not count and not as_json:
            print("(no log lines)")
        _check_tail(reader)


def _test_call(key: str) -> tuple[str, int] | None:
    """`TEST#N` (as `why` numbers a test's calls) split in two, else None."""
    test, sep, n = key.rpartition("#")
    return (test, int(n)) if sep and test and n.isdigit() and int(n) > 0 else None


def _find_in_test(rows, test: str, n: int):
    """The test's call `#n` as `why` numbers them: its exchanges by start, then id."""
    from tapproxy.capture.model import Tunnel
    from tapproxy.capture.select import test_matches

    calls = sorted(((x.timing.request_start, x.id), row, x) for row, x in rows
                   if not isinstance(x, Tunnel) and test_matches(test, x.test))
    tests = {x.test for *_, x in calls}
    if len(tests) > 1:  # `test_x#2` where two files have a test_x: say which to give
        raise _fail(f"{test!r} names {len(tests)} tests: give one of "
                    + ", ".join(sorted(t or "" for t in tests)[:3]))
    return calls[n - 1][1:] if n <= len(calls) else None  # (row, exchange)


def _warn_undescribed(schema, path: Path | None, x) -> None:
    """One line when --proto-descriptor lacks the call's method: silently decoding by
    field number would look like the descriptor was ignored."""
    from tapproxy.report.printable import printable

    method = x.grpc_method
    if schema is not None and method is not None and not schema.describes(*method):
        print(printable(f"tapproxy: warning: {path} describes no method {'/'.join(method)}: "
                        "its messages are shown by field number"), file=sys.stderr)


def _find_exchange(rows, key: str):
    """Row `key` by its number in the table, else the one whose id is `key`, else the
    first whose id starts with `key` (at least 4 characters: a shorter prefix names
    nothing in particular)."""
    by_prefix = None
    for n, x in rows:
        if str(n) == key:
            return n, x
        if by_prefix is None and (x.id == key or (len(key) >= 4 and x.id.startswith(key))):
            by_prefix = (n, x)
    return by_prefix



@app.command("export")
def export_(
    capture: Path,
    har: Annotated[Path, typer.Option("--har", help="Write a HAR 1.2 file here.")],
) -> None:
    """Write a capture's exchanges as HAR 1.2 (for browsers' and HAR tools)."""
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.har import export_har

    with open_capture(capture) as reader:
        try:
            with atomic_output(har) as out:  # a failed export leaves the old file
                n = export_har(reader, out, __version__)
        except OSError as e:
            raise _fail(f"{har}: cannot write: {e.strerror}") from e
        print(f"{n} exchanges written to {har}")
        _check_tail(reader)  # a capture cut short: its complete exchanges, then the problem


@app.command("import")
def import_(
    source: Path,
    output: Annotated[Path, typer.Option("-o", "--output", help="Capture file to write.")],
    redact: RedactNames = None,
    redact_header: RedactHeaders = None,
    redact_json: RedactJson = None,
    no_redact: NoRedact = False,
) -> None:
    """Turn a HAR file or a mitmproxy flow file into a capture, masking credentials as
    `record` does."""
    from tapproxy.capture.format import new_header
    from tapproxy.capture.har import import_har
    from tapproxy.capture.redact import Redactor
    from tapproxy.capture.writer import CaptureWriter
    from tapproxy.errors import CaptureError
    from tapproxy.supervisor.record_options import redaction

    masks = redaction(redact, redact_header, redact_json, no_redact)
    try:
        with open(source, "rb") as f:
            head = f.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError as e:
        raise CaptureError(f"{source}: cannot read: {e.strerror}") from e
    if not head:
        raise CaptureError(f"{source}: empty file, not a HAR or mitmproxy flow file")
    if head.startswith(b"{"):
        records, kind = import_har(source), "har"
    else:
        from tapproxy.proxy.mitmfile import import_flows

        records, kind = import_flows(source), "mitmproxy"
    meta = {"imported_from": str(source), "format": kind, "redaction": masks["redact"]}
    redactor = Redactor(masks["redact_names"], masks["redact_headers"],
                        masks["redact_json"]) if masks["redact"] else None
    writer = CaptureWriter(output, new_header(meta), redactor, provisional=True)
    n = 0
    try:
        for rec in records:
            try:
                writer.write(rec)
            except CaptureError as e:
                if not isinstance(e.__cause__, CaptureError):
                    raise  # the file, not the record
                # The writer refuses what the reader would: name the entry that holds it.
                what = f"entry {n}" if kind == "har" else f"HTTP flow {n + 1}"
                raise CaptureError(f"{source}: {what} cannot be stored: {e.__cause__}") from None
            n += 1
    except BaseException:
        writer.discard()  # a failed import leaves no capture, and the old one as it was
        raise
    writer.close()
    writer.publish()
    print(f"{n} exchanges imported from {source} into {output}")


@app.command()
def spans(
    capture: Path,
    otlp: Annotated[str | None, typer.Option(
        help="Send the spans to this OTLP/HTTP endpoint (http://host:4318).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write OTLP/JSON here: per test, export requests of at most 1,000 spans, "
             "one per line.")] = None,
    tree: Annotated[bool, typer.Option(help="Print each test's call tree.")] = False,
    bodies: Annotated[bool, typer.Option(help="Add bodies as span attributes.")] = False,
    test: Annotated[str | None, typer.Option(help="Only this test (glob).")] = None,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: name spans after this route (http.route).")] = None,
    service: Services = None,
) -> None:
    """Synthesize OpenTelemetry spans for a capture: a trace per test, as if every
    service were instrumented."""
    from tapproxy.capture.routes import RouteTable
    from tapproxy.capture.select import test_matches
    from tapproxy.report.tree import print_span_tree
    from tapproxy.spans.export import OtlpHttpExporter, write_otlp_json
    from tapproxy.spans.stream import spans_of_capture

    console = _out()
    exporter = OtlpHttpExporter(otlp) if otlp else None
    tree = tree or (exporter is None and out is None)
    problems: list[str] = []
    totals = {"spans": 0, "findings": 0, "tests": 0}
    try:
        with contextlib.ExitStack() as stack:
            if exporter is not None:
                stack.callback(exporter.close)
            # A failed run leaves an existing --out file as it was.
            sink = stack.enter_context(atomic_output(out)) if out else None
            routes = _callee_names(service, RouteTable(tuple(route or ())) or None,
                                   capture)
            for group in spans_of_capture(capture, bodies, on_tail=problems.append, routes=routes):
                if test is not None and not test_matches(test, group.test):
                    continue
                totals["spans"] += len(group.spans)
                totals["findings"] += len(group.findings)
                totals["tests"] += group.test is not None
                if tree:
                    print_span_tree(group.spans, group.findings, console)
                if sink is not None:
                    write_otlp_json(group.spans, sink)
                if exporter is not None:
                    exporter.export(group.spans)
    except OSError as e:  # only the --out file is written here
        raise _fail(f"{out}: cannot write: {e.strerror}") from e
    where = ", ".join(w for w in (out and f"written to {out}",
                                  exporter and f"sent to {exporter.url}") if w)
    print(f"{totals['spans']} spans for {totals['tests']} tests"
          + (f", {totals['findings']} findings" if totals["findings"] else "")
          + (f"; {where}" if where else ""), file=sys.stderr)
    if problems:
        raise _fail(problems[0])
