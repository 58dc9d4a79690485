"""`tapproxy replay`: serve a capture's recorded responses in place of its services."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli import on_interrupt
from tapproxy.cli.app import _DEFAULT_CONFDIR, Confdir, app


def _say(line: str) -> None:
    from tapproxy.report.printable import printable

    print(printable(line), file=sys.stderr, flush=True)


@app.command()
def replay(
    capture: Annotated[Path, typer.Argument(help="The capture to replay.")],
    service: Annotated[list[str] | None, typer.Option(
        help="NAME@[HOST:]PORT: serve the recorded service NAME there (repeatable; "
             "default: every recorded service on consecutive ports from --first-port).")]
    = None,
    first_port: Annotated[int, typer.Option(
        min=0, max=65535, help="The first of the consecutive ports services get by "
                               "default (0: any free ports).")] = 9001,
    listen: Annotated[str | None, typer.Option(
        help="[HOST:]PORT: also a forward proxy there, so clients with HTTP_PROXY (and "
             "HTTPS_PROXY, through the same CA as `record`) get recorded answers.")] = None,
    control: Annotated[str | None, typer.Option(
        help="HOST:PORT of the control API (POST /tests/start, /tests/end; GET /stats), "
             "which scopes matching to the test it opened.")] = None,
    match: Annotated[list[str] | None, typer.Option(
        help="What must agree: method, path, query, body (comma-separated; default all).")]
    = None,
    ignore: Annotated[list[str] | None, typer.Option(
        help="A JSON pointer glob (/items/*/updatedAt) whose values never count in a "
             "request body (repeatable); ids and timestamps never count anyway.")] = None,
    latency: Annotated[str, typer.Option(
        help="'none' answers at once; 'recorded' waits as long as the service took.")]
    = "none",
    record_missing: Annotated[list[str] | None, typer.Option(
        help="[NAME=]URL: send what nothing matched to this live service instead, and "
             "append those exchanges to --missing-output (repeatable).")] = None,
    missing_output: Annotated[Path | None, typer.Option(
        help="Where --record-missing writes (default CAPTURE's name with -missing).")]
    = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 if any request went unmatched or any recording unused.")]
    = False,
    confdir: Confdir = _DEFAULT_CONFDIR,
    against: Annotated[list[str] | None, typer.Option(
        metavar="NAME=URL", help="Re-send the requests recorded to NAME to the live URL "
        "instead, in recorded order (a WebSocket's messages too), and diff each answer "
        "with the recorded one (exit 0 equal, 1 different; repeatable).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="With --against: text or json.")] = "text",
) -> None:
    """Serve recorded responses in place of the services until SIGINT/SIGTERM; or, with
    --against, re-send them to a live service and diff its answers."""
    if against:
        from tapproxy.cli.compare import run_against

        raise typer.Exit(run_against(capture, against, ignore=ignore,
                                     output_format=output_format))
    on_interrupt(f"interrupted while starting the replay of {capture}")
    import asyncio  # here, not at the top: the other commands start without it

    from tapproxy.errors import UsageError
    from tapproxy.replay.matching import parse_criteria
    from tapproxy.replay.options import (
        ReplayOptions,
        parse_service_listener,
        parse_upstream,
        plan_listeners,
    )
    from tapproxy.replay.runner import Replay, noise_mask
    from tapproxy.supervisor.options import parse_address

    if latency not in ("none", "recorded"):
        raise UsageError(f"bad --latency {latency!r}: expected none or recorded")
    given = [parse_service_listener(s) for s in service or ()]
    upstreams = tuple(parse_upstream(s) for s in record_missing or ())
    opts = ReplayOptions(
        capture=capture,
        criteria=parse_criteria(match),
        listen=parse_address(listen, "--listen") if listen else None,
        control=parse_address(control, "--control") if control else None,
        confdir=confdir.expanduser(),
        latency=latency == "recorded",
        strict=strict,
        record_missing=upstreams,
        missing_output=missing_output or capture.with_name(f"{capture.stem}-missing.tap"),
    )
    run = Replay(opts, noise_mask(ignore or ()), log=_say)
    run.prepare(lambda callees: plan_listeners(callees, given, first_port))

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await run.start()
        for line in run.start_lines():
            print(line, flush=True)
        await stopping.wait()
        stats = await run.stop()
        for line in stats.lines():
            print(line, flush=True)
        if run.missing is not None and run.missing.count:
            print(f"recorded {run.missing.count} missing exchange(s) to "
                  f"{opts.missing_output}", flush=True)
        if stats.matched + stats.unmatched == 0:  # a replay that saw nothing is no pass
            _say("tapproxy: replayed nothing: no request reached a listener")
            return 1
        if strict and (stats.unmatched or stats.unused):
            _say("tapproxy: --strict: "
                 + ", ".join(p for p in (f"{stats.unmatched} unmatched" * bool(stats.unmatched),
                                         f"{stats.unused} unused" * bool(stats.unused)) if p))
            return 1
        return 0

    code = asyncio.run(serve())
    on_interrupt()
    raise typer.Exit(code)

