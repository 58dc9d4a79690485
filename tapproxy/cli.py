"""The `tapproxy` command: wiring of the parts, exit codes, one-line errors."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tapproxy import __version__
from tapproxy.atomic import atomic_output
from tapproxy.errors import TapproxyError, UsageError

app = typer.Typer(
    help="Record, inspect and trace the HTTP exchanges of integration tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain usage errors ("Usage: …", "Error: …" on one line, exit 2) rather than
    # a rich panel that wraps the message across lines.
    rich_markup_mode=None,
)

_DEFAULT_CONFDIR = Path("~/.mitmproxy")
Confdir = Annotated[Path, typer.Option(help="Where the interception CA lives (mitmproxy's).")]
Listen = Annotated[str, typer.Option(help="Forward proxy address HOST:PORT.")]


def _out() -> Console:
    from tapproxy.report.printable import terminal

    return terminal()


def _error(message: str) -> None:
    from tapproxy.report.printable import printable

    # Messages can quote recorded data (a test name, a header): escaped like all output.
    print(f"tapproxy: error: {printable(message)}", file=sys.stderr)


def _fail(message: str) -> typer.Exit:
    _error(message)
    return typer.Exit(2)


def _print_env(env: dict[str, str]) -> None:
    for k, v in env.items():
        quoted = v.replace("'", "'\\''")  # a quote inside single quotes: end, \', reopen
        print(f"export {k}='{quoted}'")


@app.command()
def record(
    output: Annotated[Path, typer.Option("-o", "--output", help="Capture file to write.")],
    listen: Annotated[list[str] | None, typer.Option(
        help="Forward proxy [HOST:]PORT (default 127.0.0.1:8080); NAME=[HOST:]PORT adds a "
             "listener whose callers are all named NAME (for clients that cannot send proxy "
             "credentials). Repeatable.")] = None,
    allow_hosts: Annotated[list[str] | None, typer.Option(
        help="Only parse connections to hosts matching this regex (mitmproxy's allow_hosts); "
             "others are relayed and recorded as tunnels.")] = None,
    ignore_hosts: Annotated[list[str] | None, typer.Option(
        help="Relay connections to hosts matching this regex unparsed, recorded as tunnels "
             "(mitmproxy's ignore_hosts).")] = None,
    reverse: Annotated[list[str] | None, typer.Option(
        help="NAME=URL@[HOST:]PORT: a reverse-proxy listener in front of one service.")] = None,
    start: Annotated[list[str] | None, typer.Option(
        help="NAME@[HOST:]PORT=COMMAND: start a service on a private port (the {port} in "
             "COMMAND) and listen on PORT in front of it; its callers change nothing.")]
    = None,
    start_timeout: Annotated[float, typer.Option(
        help="Seconds a --start service may take to listen on its {port}.")] = 30.0,
    caller_process: Annotated[list[str] | None, typer.Option(
        help="PATTERN=NAME: a local caller whose command line matches the glob PATTERN "
             "is NAME, e.g. '*orders.jar*=orders'.")] = None,
    process_callers: Annotated[bool, typer.Option(
        help="Name a caller on this machine after the process that owns its connection "
             "(Linux).")] = True,
    service: Annotated[list[str] | None, typer.Option(
        help="NAME=HOST[:PORT]: name the service at that address.")] = None,
    control: Annotated[str, typer.Option(
        help="Control API address HOST:PORT, or 'off'.")] = "127.0.0.1:8081",
    redact: Annotated[list[str] | None, typer.Option(
        "--redact", metavar="NAME",
        help="Also mask NAME wherever it occurs: header, query or form field, JSON key "
             "(credential-like names are masked by default). A NAME starting with $ is a "
             "JSON path, as for --redact-json.")] = None,
    redact_header: Annotated[list[str] | None, typer.Option(
        help="Also mask this header (credentials are masked by default).")] = None,
    redact_json: Annotated[list[str] | None, typer.Option(
        help="Mask this JSON path in bodies, e.g. '$.password' or '$..token'.")] = None,
    no_redact: Annotated[bool, typer.Option("--no-redact", help="Record credentials as sent.")]
    = False,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: record which route a request belongs to.")] = None,
    confdir: Confdir = _DEFAULT_CONFDIR,
    upstream_ca: Annotated[Path | None, typer.Option(
        help="PEM bundle of CAs to trust for upstream TLS.")] = None,
    insecure: Annotated[bool, typer.Option(help="Do not verify upstream certificates.")] = False,
    idle_timeout: Annotated[int, typer.Option(
        min=1,  # mitmproxy closes every connection at once with 0, and never with -1
        help="Seconds of silence before a connection is closed; an exchange left without "
             "a response by it is recorded as a timeout.")] = 600,
    otlp: Annotated[str | None, typer.Option(
        help="Export synthesized spans live to this OTLP/HTTP endpoint.")] = None,
    inject_traceparent: Annotated[bool, typer.Option(
        help="Give requests without trace context a traceparent, so instrumented services "
             "downstream join the trace.")] = False,
    otlp_receive: Annotated[str | None, typer.Option(
        help="HOST:PORT to accept OTLP/HTTP spans from instrumented services.")] = None,
    max_body: Annotated[str, typer.Option(
        help="Bodies longer than this (or of unknown length) stream through as they arrive; "
             "the record keeps this many bytes of one, plus its length and SHA-256.")]
    = "1m",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show mitmproxy's log.")]
    = False,
) -> None:
    """Run the recording proxy until SIGINT/SIGTERM, writing every exchange to OUTPUT."""
    from tapproxy.capture.routes import RouteTable
    from tapproxy.proxy.certs import check_ca_bundle, env_exports
    from tapproxy.proxy.fronting import ServiceProcess, parse_start
    from tapproxy.proxy.options import (
        RecordOptions,
        check_listeners,
        parse_address,
        parse_caller_process,
        parse_host_patterns,
        parse_listen,
        parse_reverse,
        parse_service,
        parse_size,
    )
    from tapproxy.proxy.runner import RecordingProxy
    from tapproxy.spans.export import traces_url

    unnamed, listeners = parse_listen(listen or ())
    fronts = [parse_start(s) for s in start or ()]
    fronted = [ServiceProcess.from_spec(f, start_timeout=start_timeout) for f in fronts]
    opts = RecordOptions(
        output=output,
        listen=unnamed,
        listeners=listeners,
        allow_hosts=parse_host_patterns(allow_hosts or (), "--allow-hosts"),
        ignore_hosts=parse_host_patterns(ignore_hosts or (), "--ignore-hosts"),
        reverse=(*(parse_reverse(r) for r in reverse or ()),
                 *(svc.reverse(f.listen) for svc, f in zip(fronted, fronts, strict=True))),
        services=tuple(parse_service(s) for s in service or ()),
        control=None if control == "off" else parse_address(control, "--control"),
        redact=not no_redact,
        redact_names=tuple(n for n in redact or () if not n.startswith("$")),
        redact_headers=tuple(redact_header or ()),
        redact_json=(*(n for n in redact or () if n.startswith("$")), *(redact_json or ())),
        routes=tuple(route or ()),
        confdir=confdir.expanduser(),
        upstream_ca=upstream_ca,
        insecure=insecure,
        idle_timeout=idle_timeout,
        otlp=traces_url(otlp) if otlp else None,
        inject_traceparent=inject_traceparent,
        otlp_receive=parse_address(otlp_receive, "--otlp-receive") if otlp_receive else None,
        max_body=parse_size(max_body, "--max-body"),
        process_callers=process_callers,
        caller_processes=tuple(parse_caller_process(c) for c in caller_process or ()),
    )
    if opts.redact:
        from tapproxy.capture.redact import parse_json_path

        for p in opts.redact_json:
            parse_json_path(p)  # a bad path is a usage error now, not on the writer thread
    RouteTable(opts.routes)  # a bad template is a usage error now
    check_listeners(opts)
    if upstream_ca is not None:
        check_ca_bundle(upstream_ca)

    async def stop_services() -> None:
        for svc in reversed(fronted):
            await asyncio.to_thread(svc.stop)

    async def run() -> int:
        # Ctrl-C and SIGTERM are ours from the start: during start-up they stop a service
        # still coming up and end the run once all is started; no KeyboardInterrupt
        # cancels a start half done (leaving a service running) or prints a traceback.
        loop = asyncio.get_running_loop()
        interrupted = threading.Event()
        stopping: list[asyncio.Task] = []

        async def shutdown() -> None:
            await stop_services()  # first, so that their last calls are still recorded
            proxy.request_stop()

        def on_signal() -> None:
            interrupted.set()
            if up and not stopping:
                stopping.append(loop.create_task(shutdown()))

        up = False  # everything started: a signal now stops the run
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        proxy = RecordingProxy(opts, verbose=verbose, publish=not fronted)
        await proxy.start()
        try:
            assert proxy.recorder is not None
            processes = proxy.recorder.processes
            for svc in fronted:  # after the proxy: their own calls go through it at once
                if interrupted.is_set():
                    break
                await asyncio.to_thread(
                    svc.start, env_exports(opts.listen, opts.confdir, caller=svc.name),
                    lambda pid, name=svc.name: processes and processes.add_service(pid, name),
                    abort=interrupted)
        except BaseException:
            await stop_services()
            await proxy.stop()
            if interrupted.is_set():
                return _interrupted_start(output)
            raise
        if interrupted.is_set():
            await stop_services()
            await proxy.stop()
            return _interrupted_start(output)
        up = True
        if fronted:
            proxy.publish()
        print(f"# tapproxy {__version__} recording to {output}", flush=True)
        print(f"# forward proxy at {opts.listen}", flush=True)
        for n in opts.listeners:
            print(f"# forward proxy for {n.name} at {n.listen}", flush=True)
        started = {svc.name: svc for svc in fronted}
        for r in opts.reverse:
            svc = started.get(r.name)
            if svc is not None and r.upstream == svc.upstream:
                print(f"# {r.name} started (pid {svc.pid}) on private port {svc.private_port}, "
                      f"fronted at {r.listen}", flush=True)
            else:
                print(f"# reverse proxy for {r.name} ({r.upstream}) at {r.listen}", flush=True)
        if proxy.control is not None:
            print(f"# control API at http://{proxy.control}", flush=True)
        if opts.otlp_receive is not None:
            print(f"# OTLP receiver at http://{opts.otlp_receive}/v1/traces", flush=True)
        if opts.otlp is not None:
            print(f"# exporting spans to {opts.otlp}", flush=True)
        _print_env(env_exports(opts.listen, opts.confdir))
        sys.stdout.flush()
        try:
            await proxy.wait()
        finally:
            await stop_services()
        assert proxy.recorder is not None
        writer = proxy.recorder.writer
        tunnels = proxy.recorder.tunnels.count
        seen = (f"# {proxy.recorder.exchanges} exchanges"
                + (f" and {tunnels} tunnel{'s' * (tunnels != 1)} (not HTTP)" if tunnels else ""))
        if writer.failure is None:
            print(f"{seen} recorded to {output}", flush=True)
            return 0
        print(f"{seen} seen; {writer.records_written} records "
              f"written to {output}, {writer.records_lost} lost", flush=True)
        print(f"tapproxy: error: {writer.records_lost} records lost: {writer.failure}",
              file=sys.stderr, flush=True)
        return 1

    raise typer.Exit(asyncio.run(run()))


def _interrupted_start(output: Path) -> int:
    print(f"tapproxy: interrupted while starting; {output} was not written", file=sys.stderr,
          flush=True)
    return 130


@app.command()
def env(
    listen: Listen = "127.0.0.1:8080",
    caller: Annotated[str | None, typer.Option(
        help="Name the calling service in the proxy URL (http://NAME@host:port).")] = None,
    confdir: Confdir = _DEFAULT_CONFDIR,
    check: Annotated[bool, typer.Option(
        "--check", help="Run each HTTP client found here (curl, wget, python, node, java, "
                        "go) with these exports through a proxy of the check's own, and say "
                        "which ones it saw. Exit 1 if any went around it or failed.")] = False,
    clients: Annotated[list[str] | None, typer.Argument(metavar="CLIENT",
        help="With --check: only these (curl, wget, python, node, java, go).",
        show_default=False)] = None,
) -> None:
    """Print the shell exports that route a process through the proxy and trust its CA."""
    from tapproxy.proxy.certs import env_exports
    from tapproxy.proxy.options import parse_address

    if check:
        raise typer.Exit(_check_clients(confdir.expanduser(), caller, clients))
    if clients:
        raise UsageError(f"unexpected argument {clients[0]!r} (client names go with --check)")
    _print_env(env_exports(parse_address(listen, "--listen"), confdir.expanduser(), caller))


def _check_clients(confdir: Path, caller: str | None, tools: list[str] | None) -> int:
    from tapproxy.proxy.envcheck import RECORDED, TOOLS, find_clients, print_report, run_check

    found, notes = find_clients(tools or TOOLS)
    print(f"# each client with the exports of `tapproxy env`, through a proxy of the check's "
          f"own (CA in {confdir}), calling a loopback service over http and https", flush=True)
    outcomes = asyncio.run(run_check(confdir, found, caller or "check"))
    print_report(outcomes, notes)
    return 0 if all(o.result == RECORDED for o in outcomes) else 1


@app.command()
def show(
    capture: Path,
    test: Annotated[str | None, typer.Option(help="Only this test (glob).")] = None,
    service: Annotated[str | None, typer.Option(help="Only calls from/to this service.")]
    = None,
    errors: Annotated[bool, typer.Option(
        help="Only failed exchanges (errors, 4xx, 5xx, gRPC status not OK) and failed "
             "tunnels.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per exchange or tunnel (its `kind` says which).")]
    = False,
    exchange: Annotated[str | None, typer.Option(
        help="Show exchange N (its # in the table), tunnel tN, or the one whose id starts "
             "so (4+ characters).")] = None,
    proto_descriptor: Annotated[Path | None, typer.Option(
        help="Decode gRPC messages by name with this `protoc --include_imports "
             "--descriptor_set_out` file (else by field number).")] = None,
) -> None:
    """List the exchanges of a capture, and the connections not parsed as HTTP (tunnels,
    rows t1, t2, …), or show one in full."""
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import TestCase, Tunnel
    from tapproxy.capture.protobuf import ProtoSchema
    from tapproxy.capture.select import numbered_rows, select
    from tapproxy.report.jsonl import exchange_json, tunnel_json
    from tapproxy.report.printable import json_line
    from tapproxy.report.text import print_exchange, print_table, print_tunnel

    schema = None if proto_descriptor is None else ProtoSchema(proto_descriptor)
    console = _out()
    with open_capture(capture) as reader:
        tests: dict[str, TestCase] = {}

        def records():
            for r in reader:
                if isinstance(r, TestCase):
                    tests[r.name] = r
                yield r

        rows = select(numbered_rows(records()), test, service, errors)
        if exchange is not None:
            found = _find_exchange(rows, exchange)
            for _ in records():  # test outcomes are written after their exchanges
                pass
            _check_tail(reader)
            if found is None:
                raise _fail(f"{capture}: no exchange {exchange!r}")
            n, x = found
            if isinstance(x, Tunnel):
                print_tunnel(str(n), x, console)
            else:
                print_exchange(n, x, console, tests, schema)
        elif as_json:
            for n, x in rows:
                row = tunnel_json(n, x) if isinstance(x, Tunnel) else exchange_json(n, x)
                print(json_line(row))
        else:
            count = print_table(rows, console)
            if count == 0:
                console.print("(no exchanges)", style="dim")
        _check_tail(reader)


def _find_exchange(rows, key: str):
    """Row `key` by its number in the table, else the first whose id starts with `key`
    (at least 4 characters: a shorter prefix names nothing in particular)."""
    by_prefix = None
    for n, x in rows:
        if str(n) == key:
            return n, x
        if by_prefix is None and len(key) >= 4 and x.id.startswith(key):
            by_prefix = (n, x)
    return by_prefix


def _check_tail(reader) -> None:
    if reader.truncated:
        raise _fail(reader.problem)


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
    no_redact: Annotated[bool, typer.Option(
        "--no-redact", help="Keep credentials as in the source (masked by default, as "
                            "`record` does).")] = False,
) -> None:
    """Turn a HAR file or a mitmproxy flow file into a capture."""
    from tapproxy.capture.format import new_header
    from tapproxy.capture.har import import_har
    from tapproxy.capture.redact import Redactor
    from tapproxy.capture.writer import CaptureWriter
    from tapproxy.errors import CaptureError

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
    meta = {"imported_from": str(source), "format": kind, "redaction": not no_redact}
    writer = CaptureWriter(output, new_header(meta), None if no_redact else Redactor(),
                           provisional=True)
    n = 0
    try:
        for rec in records:
            writer.write(rec)
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
        help="Write OTLP/JSON here, one export request per line per test.")] = None,
    tree: Annotated[bool, typer.Option(help="Print each test's call tree.")] = False,
    bodies: Annotated[bool, typer.Option(help="Add bodies as span attributes.")] = False,
    test: Annotated[str | None, typer.Option(help="Only this test (glob).")] = None,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: name spans after this route (http.route).")] = None,
) -> None:
    """Synthesize OpenTelemetry spans for a capture: a trace per test, as if every
    service were instrumented."""
    from fnmatch import fnmatchcase

    from tapproxy.capture.routes import RouteTable
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
            routes = RouteTable(tuple(route or ()))
            for group in spans_of_capture(capture, bodies, on_tail=problems.append, routes=routes):
                if test is not None and not (group.test and fnmatchcase(group.test, test)):
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
) -> None:
    """Explain a failing test: its call tree, the first point of failure and what followed."""
    from tapproxy.analysis.budget import parse_budget
    from tapproxy.analysis.failure import first_failure
    from tapproxy.analysis.grouping import runs_by_test
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.routes import RouteTable
    from tapproxy.report.printable import json_line
    from tapproxy.report.story import story_json, story_lines

    limits = parse_budget(budget or ())
    routes = RouteTable(tuple(route or ()))
    if baseline is not None:
        open_capture(baseline).close()  # a bad baseline is an error before any output

    def baseline_of(name: str | None):
        with open_capture(baseline) as reader:  # type: ignore[arg-type]
            for run in runs_by_test(map(routes, reader) if routes else reader, only=name):
                if run.name == name:
                    return run.exchanges
        return ()

    told = total = 0
    with open_capture(capture) as reader:
        records = map(routes, reader) if routes else reader
        for run in runs_by_test(records, only=test):
            if run.name is None and test is None:
                continue  # exchanges of no test have no story to tell
            total += 1
            story = first_failure(run.exchanges, test=run.name, outcome=run.outcome,
                                  budget=limits or None,
                                  baseline=baseline_of(run.name) if baseline else None)
            if test is None and story.root is None:
                continue
            told += 1
            if as_json:
                print(json_line(story_json(story)))
            else:
                if told > 1:
                    print()
                print("\n".join(story_lines(story)))
        _check_tail(reader)
    if test is not None and total == 0:
        raise _fail(f"{capture}: no test {test!r}")
    if test is None and not as_json:
        print(f"{told} of {total} tests with a failure to explain", file=sys.stderr)


@app.command()
def stats(
    capture: Path,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    by: Annotated[list[str] | None, typer.Option(
        help="test, edge or route (repeatable); default: all three.")] = None,
    route: Annotated[list[str] | None, typer.Option(
        help="[SERVICE:]/path/{param}: group calls by this route.")] = None,
) -> None:
    """Count, error rate, throughput, latency percentiles and bytes per edge, route, test."""
    from tapproxy.analysis.metrics import Metrics
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import Exchange
    from tapproxy.capture.routes import RouteTable
    from tapproxy.report.printable import json_line
    from tapproxy.report.stats import metrics_json, stats_lines

    dims = tuple(by or ("edge", "route", "test"))
    for d in dims:
        if d not in ("test", "edge", "route"):
            raise _fail(f"bad --by {d!r}: expected test, edge or route")
    routes = RouteTable(tuple(route or ()))
    metrics = Metrics()
    with open_capture(capture) as reader:
        for r in reader:
            if isinstance(r, Exchange):
                metrics.add(routes(r) if routes else r)
        _check_tail(reader)
    if as_json:
        print(json_line(metrics_json(metrics, dims)))
    else:
        print("\n".join(stats_lines(metrics, dims)))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Capture file to write.")]
    = Path("demo.tap"),
    confdir: Confdir = _DEFAULT_CONFDIR,
) -> None:
    """Run three services behind the proxy through a short scenario, then show the capture."""
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.select import numbered_exchanges
    from tapproxy.demo import run_demo
    from tapproxy.report.text import print_table
    from tapproxy.report.tree import print_span_tree
    from tapproxy.spans.stream import spans_of_capture

    console = _out()
    console.print("[bold]tapproxy demo[/]: shop → inventory, shop → payments, all through "
                  "the recording proxy\n")
    result = asyncio.run(run_demo(output, confdir.expanduser()))
    for test, outcome in result.outcomes.items():
        style = "green" if outcome == "passed" else "bold red"
        console.print(f"  {test:<24} [{style}]{outcome}[/]")
    console.print()
    first_failed = None

    def rows(reader):
        nonlocal first_failed
        for n, x in numbered_exchanges(reader):
            if first_failed is None and x.failed:
                first_failed = n
            yield n, x

    with open_capture(output) as reader:
        print_table(rows(reader), console)
    for group in spans_of_capture(output):
        if group.outcome == "failed":
            console.print(f"\n[bold]call tree of {group.test}[/] (spans tapproxy synthesized; "
                          "no service here is instrumented):")
            print_span_tree(group.spans, group.findings, console)
    console.print(f"\ncapture written to {output}; look closer with:\n"
                  f"  tapproxy show {output} --errors\n"
                  f"  tapproxy show {output} --exchange {first_failed or 1}\n"
                  f"  tapproxy spans {output} --tree   (or --otlp http://localhost:4318)")


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")]
          = False) -> None:
    if version:
        print(f"tapproxy {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Entry point: TapproxyError becomes one line on stderr and exit code 2.

    Typer runs in its standalone mode so that it handles its own usage errors (exit 2):
    it raises its private copy of click's exception classes, which no check against
    `click` (or a name inside typer that has moved between releases) would match.
    """
    try:
        app(prog_name="tapproxy")
    except TapproxyError as e:
        _error(str(e))
        sys.exit(2)


if __name__ == "__main__":
    main()
