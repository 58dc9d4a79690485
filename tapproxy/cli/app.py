"""The `tapproxy` command: the typer app, its entry point, one-line errors, shared options."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tapproxy import __version__
from tapproxy.errors import TapproxyError

if TYPE_CHECKING:  # rich is imported by the commands that print through it, not at start
    from rich.console import Console

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
Services = Annotated[list[str] | None, typer.Option(
    "--service", help="NAME=HOST[:PORT]: name the callee at that address, as `record "
    "--service` would have (repeatable).")]


def _callee_names(specs: list[str] | None, then=None, capture: Path | None = None):
    """The record transform for `--service` options, then `then` (routes); None if none.
    With `capture`, read first to give each process one name in all its records."""
    from tapproxy.capture.naming import CalleeNames, GivenNames

    services = []
    if specs:  # the record options' parsers: only imported when there is one to parse
        from tapproxy.supervisor.options import parse_service

        services = [(s.name, s.host, s.port) for s in map(parse_service, specs)]
    names = CalleeNames(services, then) or None
    if capture is not None:
        from tapproxy.capture.format import open_capture

        def readable(reader):  # the reading proper says where a damaged capture stops
            with contextlib.suppress(TapproxyError):
                yield from reader.process_parties()

        with open_capture(capture) as reader:
            names = GivenNames(readable(reader), names) or None
    return names

# Redaction, as `record` and `import` both take it (README: import masks the same way).
RedactNames = Annotated[list[str] | None, typer.Option(
    "--redact", metavar="NAME",
    help="Also mask NAME wherever it occurs: header, query or form field, JSON key "
         "(credential-like names are masked by default). A NAME starting with $ is a "
         "JSON path, as for --redact-json.")]
RedactHeaders = Annotated[list[str] | None, typer.Option(
    help="Also mask this header (credentials are masked by default).")]
RedactJson = Annotated[list[str] | None, typer.Option(
    help="Mask this JSON path in bodies, e.g. '$.password' or '$..token'.")]
NoRedact = Annotated[bool, typer.Option("--no-redact", help="Keep credentials as sent.")]


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


def _check_tail(reader) -> None:
    if reader.truncated:
        raise _fail(reader.problem)


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
