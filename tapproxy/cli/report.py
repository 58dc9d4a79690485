"""`tapproxy report`: one self-contained HTML file of a capture, to open in a browser."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import _error, app


@contextlib.contextmanager
def _progress(total: int):
    """A callback taking the bytes read so far: a bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    columns = (TextColumn("reading"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("report", total=total)
        yield lambda done: bar.update(task, completed=done)


@app.command()
def report(
    capture: Path,
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="The HTML file to write.")] = Path("report.html"),
    contract: Annotated[list[str] | None, typer.Option(
        "--contract", metavar="[SERVICE=]FILE",
        help="Show mismatches against this contract, as `tapproxy check` finds them "
             "(repeatable).")] = None,
) -> None:
    """Write one self-contained HTML report of a capture: tests, waterfall, service map,
    the first point of failure, contract mismatches, logs; it opens from disk."""
    from tapproxy.contract.load import load_contracts
    from tapproxy.report.html import write_report
    from tapproxy.report.html.write import check_writable

    check_writable(output)  # before loading contracts or reading a large capture
    contracts = load_contracts(contract or [])
    try:
        size = capture.stat().st_size
    except OSError:
        size = 0  # open_capture says what is wrong with it
    with _progress(size) as progress:
        result = write_report(capture, output, contracts, progress)
    print(f"report written to {output}: {result.exchanges} exchanges, {result.tests} tests, "
          f"{result.size / 1024:.0f} KiB", file=sys.stderr)
    if result.problem is not None:
        _error(result.problem)
        raise typer.Exit(2)
