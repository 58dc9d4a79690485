"""`tapproxy record` and `tapproxy env`: the recording proxy, its services, its environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy import __version__
from tapproxy.cli import interrupted_before, on_interrupt
from tapproxy.cli.app import (
    _DEFAULT_CONFDIR,
    Confdir,
    Listen,
    NoRedact,
    RedactHeaders,
    RedactJson,
    RedactNames,
    _print_env,
    app,
)
from tapproxy.errors import UsageError


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
        "--process-name", "--caller-process",
        help="PATTERN=NAME: a local process (caller or callee) whose command line or "
             "executable matches the glob PATTERN is NAME, e.g. '*orders.jar*=orders'.")]
    = None,
    process_callers: Annotated[bool, typer.Option(
        "--process-names/--no-process-names", "--process-callers/--no-process-callers",
        help="Name callers and callees on this machine after the process at the other "
             "end of the connection (Linux).")] = True,
    service: Annotated[list[str] | None, typer.Option(
        help="NAME=HOST[:PORT]: name the service at that address.")] = None,
    control: Annotated[str, typer.Option(
        help="Control API address HOST:PORT, or 'off'.")] = "127.0.0.1:8081",
    redact: RedactNames = None,
    redact_header: RedactHeaders = None,
    redact_json: RedactJson = None,
    no_redact: NoRedact = False,
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
    workers: Annotated[str, typer.Option(
        help="Recording processes behind the same listeners (SO_REUSEPORT), each "
             "writing a part merged into OUTPUT at stop: a number, or 'auto' for one "
             "per core.")] = "1",
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show mitmproxy's log.")]
    = False,
) -> None:
    """Run the recording proxy until SIGINT/SIGTERM, writing every exchange to OUTPUT."""
    on_interrupt(f"interrupted while starting; {output} was not written")
    import asyncio  # here, as every heavy import: the other commands start without it

    from tapproxy.capture.routes import RouteTable
    from tapproxy.proxy.certs import check_ca_bundle
    from tapproxy.supervisor.fronting import ServiceProcess, parse_starts
    from tapproxy.supervisor.options import check_listeners, parse_seconds
    from tapproxy.supervisor.record_options import record_options
    from tapproxy.supervisor.session import record_until_stopped, record_with_workers

    fronts = parse_starts(start or ())
    start_timeout = parse_seconds(start_timeout, "--start-timeout")
    fronted = [ServiceProcess.from_spec(f, start_timeout=start_timeout) for f in fronts]
    opts = record_options(
        output, listen=listen or (), allow_hosts=allow_hosts or (),
        ignore_hosts=ignore_hosts or (), reverse=reverse or (),
        fronted=[svc.reverse(f.listen) for svc, f in zip(fronted, fronts, strict=True)],
        service=service or (), control=control, redact=redact or (),
        redact_header=redact_header or (), redact_json=redact_json or (),
        no_redact=no_redact, route=route or (), confdir=confdir, upstream_ca=upstream_ca,
        insecure=insecure, idle_timeout=idle_timeout, otlp=otlp,
        inject_traceparent=inject_traceparent, otlp_receive=otlp_receive, max_body=max_body,
        process_callers=process_callers, caller_process=caller_process or (),
        workers=workers)
    RouteTable(opts.routes)  # a bad template is a usage error now
    check_listeners(opts)
    if upstream_ca is not None:
        check_ca_bundle(upstream_ca)

    async def run() -> int:
        if opts.workers > 1:
            group = await record_with_workers(
                opts, fronted, verbose=verbose, interrupted_before=interrupted_before,
                on_started=lambda run: _announce(run, fronted))
            if group is None:
                print(f"tapproxy: interrupted while starting; {output} was not written",
                      file=sys.stderr, flush=True)
                return 130
            return _workers_summary(group)
        proxy = await record_until_stopped(
            opts, fronted, verbose=verbose, interrupted_before=interrupted_before,
            on_started=lambda proxy: _announce(proxy, fronted))
        if proxy is None:
            print(f"tapproxy: interrupted while starting; {output} was not written",
                  file=sys.stderr, flush=True)
            return 130
        return _summary(proxy)

    code = asyncio.run(run())
    on_interrupt()  # the loop's close gave SIGINT back to KeyboardInterrupt
    raise typer.Exit(code)


def _announce(proxy, fronted) -> None:
    """What is listening where, and the exports that send a process through the proxy."""
    from tapproxy.proxy.certs import env_exports

    opts = proxy.options
    print(f"# tapproxy {__version__} recording to {opts.output}", flush=True)
    workers = f" ({opts.workers} workers)" if opts.workers > 1 else ""
    print(f"# forward proxy at {opts.listen}{workers}", flush=True)
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


def _summary(proxy) -> int:
    """What was recorded, and exit 1 if records were lost."""
    output = proxy.options.output
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


def _workers_summary(run) -> int:
    """The merged capture, and exit 1 if a worker died (its in-flight records lost)."""
    output = run.options.output
    print(f"# {run.records} records from {len(run.group.workers)} workers merged into "
          f"{output}", flush=True)
    if not run.group.lost:
        return 0
    for line in run.group.lost:
        print(f"tapproxy: error: {line}", file=sys.stderr, flush=True)
    return 1


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
    from tapproxy.supervisor.options import check_caller_name, check_name, parse_address

    if caller:
        check_caller_name(check_name(caller, "--caller"), "--caller")
    if check:
        raise typer.Exit(_check_clients(confdir.expanduser(), caller, clients))
    if clients:
        raise UsageError(f"unexpected argument {clients[0]!r} (client names go with --check)")
    _print_env(env_exports(parse_address(listen, "--listen"), confdir.expanduser(), caller))


def _check_clients(confdir: Path, caller: str | None, tools: list[str] | None) -> int:
    import asyncio

    from tapproxy.supervisor.envcheck import RECORDED, TOOLS, find_clients, print_report, run_check

    found, notes = find_clients(tools or TOOLS)
    if not found:  # nothing checked is no pass
        print_report([], notes)
        print("tapproxy: error: no client to check: none was found on PATH",
              file=sys.stderr, flush=True)
        return 1
    print(f"# each client with the exports of `tapproxy env`, through a proxy of the check's\n"
          f"# own (CA in {confdir}),\n"
          "# calling a loopback service over http and https", flush=True)
    outcomes = asyncio.run(run_check(confdir, found, caller or "check"))
    print_report(outcomes, notes)
    return 0 if all(o.result == RECORDED for o in outcomes) else 1
