"""`tapproxy diff`: two captures (or two exchanges of one) compared; and the glue for
`tapproxy replay --against`, which compares a live service with its recording."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import _check_tail, _fail, app

Format = Annotated[str, typer.Option(
    "--format", metavar="text|json",
    help="text (80 columns) or json (one object per line, a summary last).")]
Ignore = Annotated[list[str] | None, typer.Option(
    "--ignore", metavar="POINTER_GLOB",
    help="Never report this JSON pointer of a body or message ('*' one segment, '**' "
         "any depth), e.g. /items/*/updatedAt, or /*/sentAt in every WebSocket "
         "message (repeatable).")]
ShowNoise = Annotated[bool, typer.Option(
    "--show-noise", help="List the fields ignored as noise, and what was learned.")]
LatencyThresholdOpt = Annotated[str | None, typer.Option(
    "--latency-threshold", metavar="LIMIT",
    help="Report an exchange slower than expected by more than this: a duration "
         "(100ms) or a percentage (50%).")]
ProtoDescriptor = Annotated[Path | None, typer.Option(
    metavar="FILE", help="Compare gRPC messages by field name with this `protoc --include_imports "
         "--descriptor_set_out` file (else by field number).")]


def diff_options(ignore: list[str] | None, show_noise: bool, latency_threshold: str | None,
                 proto_descriptor: Path | None, output_format: str):
    """The options as DiffOptions: every malformed one refused before anything is read."""
    from tapproxy.capture.protobuf import ProtoSchema
    from tapproxy.diff import DiffOptions, parse_latency_threshold
    from tapproxy.errors import UsageError
    from tapproxy.noise import parse_pointer_glob

    if output_format not in ("text", "json"):
        raise _fail(f"bad --format {output_format!r}: expected text or json")
    try:
        globs = tuple(parse_pointer_glob(g) for g in ignore or ())
    except UsageError as e:  # name the option: the message names only the pattern
        raise _fail(f"--ignore: {e}") from None
    return DiffOptions(
        ignore=globs,
        schema=None if proto_descriptor is None else ProtoSchema(proto_descriptor),
        latency=None if latency_threshold is None else parse_latency_threshold(
            latency_threshold),
        show_noise=show_noise)


@app.command()
def diff(
    expected: Annotated[Path, typer.Argument(help="The capture taken as expected.")],
    actual: Annotated[Path | None, typer.Argument(
        help="The capture compared with it (none with --exchange).")] = None,
    exchange: Annotated[list[str] | None, typer.Option(
        metavar="N", help="N or an id prefix: give two to compare two exchanges of one capture.")]
    = None,
    ignore: Ignore = None,
    show_noise: ShowNoise = False,
    latency_threshold: LatencyThresholdOpt = None,
    proto_descriptor: ProtoDescriptor = None,
    route: Annotated[list[str] | None, typer.Option(
        metavar="TEMPLATE", help="[SERVICE:]/path/{param}: pair calls by this route.")]
    = None,
    output_format: Format = "text",
) -> None:
    """Compare two captures exchange by exchange (exit 0 equal, 1 different, 2 bad input):
    calls paired by test, caller, callee, method, route and occurrence; bodies and
    WebSocket messages compared by structure; noise (ids, timestamps, what differs
    between identical requests) set aside."""
    from tapproxy.capture.routes import RouteTable

    if exchange:
        if actual is not None or len(exchange) != 2:
            raise _fail("--exchange: give it twice, with one capture "
                        "(tapproxy diff run.tap --exchange 3 --exchange 7)")
    elif actual is None:
        raise _fail("give two captures, or one and --exchange twice")
    options = diff_options(ignore, show_noise, latency_threshold, proto_descriptor,
                           output_format)
    routes = RouteTable(tuple(route or ())) or None
    if exchange:
        differs = _diff_two(expected, exchange, options, routes, output_format)
    else:
        differs = _diff_captures(expected, actual, options, routes,  # type: ignore[arg-type]
                                 output_format)
    raise typer.Exit(1 if differs else 0)


def _diff_captures(expected: Path, actual: Path, options, routes, output_format: str) -> bool:
    from tapproxy.capture.format import open_capture
    from tapproxy.diff import diff_captures
    from tapproxy.report.diff import DiffText, item_json, summary_json, summary_lines
    from tapproxy.report.printable import json_line

    with contextlib.ExitStack() as stack:
        a = stack.enter_context(open_capture(expected))
        b = stack.enter_context(open_capture(actual))
        run = diff_captures(a, b, options, routes)
        text = DiffText(str(expected), str(actual), options.show_noise)
        printed = False
        for item in run:
            if output_format == "json":
                print(json_line(item_json(item)))
                continue
            if not printed:
                print("\n".join(text.head()))
                printed = True
            print("\n".join(text.lines(item)))
        if output_format == "json":
            print(json_line(summary_json(run.summary)))
        else:
            print("\n".join(summary_lines(run.summary)))
        _check_tail(a)
        _check_tail(b)
    return not run.summary.equal


def _diff_two(capture: Path, keys: list[str], options, routes, output_format: str) -> bool:
    from tapproxy.capture.format import open_capture
    from tapproxy.diff.single import diff_exchanges
    from tapproxy.report.diff import DiffText, item_json
    from tapproxy.report.printable import json_line

    with open_capture(capture) as reader:
        pair = diff_exchanges(reader, keys[0], keys[1], options, routes)
        _check_tail(reader)
    if output_format == "json":
        print(json_line(item_json(pair)))
    else:
        text = DiffText(f"{capture} #{pair.expected.number}",
                        f"{capture} #{pair.actual.number}", options.show_noise)
        print("\n".join(text.head() + text.lines(pair)))
        n = len(pair.changes)
        print(f"{f'{n:,} difference' + ('s' if n > 1 else '') if n else 'no differences'}; "
              f"ignored as noise: {pair.noise_count:,} field"
              + ("" if pair.noise_count == 1 else "s"))
    return pair.differs


def run_against(capture: Path, target: str | list[str], *, ignore: list[str] | None = None,
                show_noise: bool = False, latency_threshold: str | None = None,
                proto_descriptor: Path | None = None, output_format: str = "text",
                timeout: float = 30.0, match: object = None) -> int:
    """`tapproxy replay CAPTURE --against NAME=URL` (repeatable): re-send what went to
    each NAME, print how each live answer differs from the recorded one; the exit code
    (0 equal, 1 different). Bad input raises TapproxyError (one line, exit 2) before
    anything is sent. `match` (replay's --match) has no bearing here: every request
    recorded to NAME is re-sent."""
    from tapproxy.diff.against import parse_target

    targets = [target] if isinstance(target, str) else list(target)
    parsed = [parse_target(t) for t in targets]  # every one checked before any is sent
    options = diff_options(ignore, show_noise, latency_threshold, proto_descriptor,
                           output_format)
    codes = [_against_one(capture, name, url, options, output_format, timeout)
             for name, url in parsed]
    return max(codes)


def _against_one(capture: Path, name: str, url: str, options, output_format: str,
                 timeout: float) -> int:
    from tapproxy.capture.format import open_capture
    from tapproxy.diff.against import replay_against
    from tapproxy.errors import DiffError
    from tapproxy.report.diff import DiffText, item_json, summary_json, summary_lines
    from tapproxy.report.printable import json_line, printable

    show_noise = options.show_noise
    with open_capture(capture) as reader:
        run = replay_against(reader, name, url, options, timeout)
        text = DiffText(f"{capture} (recorded {name})", f"{url} (live)", show_noise)
        printed = False
        for pair in run:
            if not (pair.changes or show_noise):
                continue
            if output_format == "json":
                print(json_line(item_json(pair)), flush=True)
                continue
            if not printed:
                print("\n".join(text.head()))
                printed = True
            print("\n".join(text.lines(pair)), flush=True)
        _check_tail(reader)
    if run.summary.pairs == 0:  # nothing compared is no "equal"
        reasons = ", ".join(f"{n} {why}" for why, n in run.skipped.items())
        raise DiffError(printable(f"{capture}: no request to {name} could be re-sent "
                                  f"({reasons})"))
    if output_format == "json":
        print(json_line({**summary_json(run.summary), "target": name, "url": url,
                         "skipped": run.skipped}))
    else:
        print("\n".join(summary_lines(run.summary, f"re-sent exchanges to {name}")))
        for why, n in run.skipped.items():
            print(f"not re-sent: {n:,} {printable(why)}")
    return 0 if run.summary.equal else 1
