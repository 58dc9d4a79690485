"""`tapproxy check`: a capture against contracts (own format, OpenAPI, Pact, gRPC).

Exit 0: every exchange kept its contracts; 1: mismatches, or nothing was checked (a
check that saw nothing passes nothing); 2: bad input (a capture or contract file that
cannot be read or is none of the kinds).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import Services, _callee_names, _check_tail, _error, _fail, app

_FORMATS = ("text", "json", "junit", "sarif")


def _load(specs: list[str]):
    """Each `--contract`, loaded; a kind this tapproxy cannot check yet is bad input."""
    from tapproxy.contract.load import load_contract

    contracts = []
    for spec in specs:
        try:
            contracts.append(load_contract(spec))
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("tapproxy.contract."):
                raise
            kind = e.name.rpartition(".")[2]
            raise _fail(f"{spec}: this tapproxy cannot check {kind} contracts yet") from None
    return contracts


def _with_progress(records: Iterable, reader, size: int) -> Iterator:
    """`records`, with a progress bar on stderr while they are read (a terminal only)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    columns = (TextColumn("checking"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("check", total=size)
        for n, record in enumerate(records):
            if n % 512 == 0:
                progress.update(task, completed=reader.position[1])
            yield record


@app.command()
def check(
    capture: Path,
    contract: Annotated[list[str] | None, typer.Option(
        "--contract", metavar="[SERVICE=]FILE",
        help="An expectation file (tapproxy: 1), OpenAPI 3, Pact or protobuf, told "
             "by content; SERVICE= binds it to that callee (repeatable).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="text, json, junit or sarif.")] = "text",
    service: Services = None,
) -> None:
    """Check every exchange of a capture against contracts: mismatches with the payload
    and the contract's line, and what each contract's items were called."""
    from tapproxy.capture.format import open_capture
    from tapproxy.contract.check import check_records
    from tapproxy.report import contract as render
    from tapproxy.report.printable import json_line

    if output_format not in _FORMATS:
        raise _fail(f"bad --format {output_format!r}: expected {', '.join(_FORMATS)}")
    if not contract:
        raise _fail("check: give at least one --contract FILE")
    contracts = _load(contract)
    # Parties named as `show` and `stats` name them (a process one name in all its
    # records), so that names copied from there into a contract match.
    names = _callee_names(service, capture=capture)
    with open_capture(capture) as reader:
        records: Iterable = map(names, reader) if names else reader
        if sys.stderr.isatty():
            records = _with_progress(records, reader, capture.stat().st_size)
        result = check_records(records, contracts)
        shown = str(capture)
        if output_format == "json":
            print(json_line(render.check_json(result, shown)))
        elif output_format == "junit":
            print(render.check_junit(result, shown))
        elif output_format == "sarif":
            import json

            print(json.dumps(render.check_sarif(result, shown), indent=2,
                             ensure_ascii=False))
        else:
            print("\n".join(render.check_lines(result, shown)))
        _check_tail(reader)
    if result.exchanges == 0:
        _error(f"{capture}: no exchanges to check: nothing passes unseen")
        raise typer.Exit(1)
    if result.checked == 0:
        _error(f"{capture}: no exchange is one any contract describes")
        raise typer.Exit(1)
    if result.mismatches:
        raise typer.Exit(1)
