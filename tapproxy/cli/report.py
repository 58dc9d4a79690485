"""`tapproxy report`: one self-contained HTML file of a capture, to open in a browser."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import _error, app
from tapproxy.cli.progress import progress_bar


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
    with progress_bar("reading", size) as progress:
        result = write_report(capture, output, contracts, progress)
    print(f"report written to {output}: {result.exchanges} exchanges, {result.tests} tests, "
          f"{result.size / 1024:.0f} KiB", file=sys.stderr)
    if result.problem is not None:
        _error(result.problem)
        raise typer.Exit(2)
