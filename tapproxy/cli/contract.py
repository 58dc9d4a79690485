"""`tapproxy contract draft`: a contract drafted from recorded traffic.

The drafting is pure (`tapproxy.contract.draft`); here: reading the captures, choosing
the files to write, and writing each whole or not at all (`tapproxy.atomic`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import Services, _callee_names, _check_tail, _fail, app

contract_app = typer.Typer(
    help="Contracts from traffic: `contract draft`.", no_args_is_help=True,
    rich_markup_mode=None)
app.add_typer(contract_app, name="contract")


def _records(captures: list[Path], stack: contextlib.ExitStack, names,
             readers: list) -> Iterator:
    from tapproxy.capture.format import open_capture

    for capture in captures:
        reader = stack.enter_context(open_capture(capture))
        readers.append(reader)
        yield from (map(names, reader) if names else reader)


def _file_name(*names: str) -> str:
    # Service names are the capture's: keep them readable, but never a path.
    return "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", n).strip(".") or "_" for n in names)


def _dump(doc: dict, path: Path) -> str:
    """The document as JSON for a .json file, else as YAML."""
    if path.suffix == ".json":
        from tapproxy.contract.draft.pact import json_text

        return json_text(doc)
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=88)


def _write(files: dict[Path, str]) -> None:
    """Every file whole, or a one-line error (exit 2): none of them cut off."""
    from tapproxy.atomic import atomic_output

    for path, text in files.items():
        if path.is_dir():
            raise _fail(f"{path}: is a directory; -o names the file to write")
        try:
            with atomic_output(path) as out:
                out.write(text)
        except OSError as e:
            raise _fail(f"{path}: cannot write: {e.strerror or e}") from None


def _out_dir(output: Path, what: str) -> Path:
    if output.exists() and not output.is_dir():
        raise _fail(f"{output}: not a directory; {what} writes one file per "
                    "service into -o DIR")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _fail(f"{output}: cannot create directory: {e.strerror or e}") from None
    return output


def _openapi_files(traffic, given: str, source: str) -> dict[Path, str]:
    from tapproxy.contract.draft.openapi import openapi_from_traffic

    callees = traffic.callees()
    output = Path(given)
    if output.is_dir() or given.endswith("/"):
        out = _out_dir(output, "--openapi")
        return {out / f"{_file_name(c)}.yaml":
                _dump(openapi_from_traffic(traffic, c, source=source), Path("x.yaml"))
                for c in callees}
    if len(callees) > 1:
        # Within 80 columns with "tapproxy: error: ": the services are `stats`'s to list.
        raise _fail(f"--openapi: {len(callees)} services called: give -o DIR/ or "
                    "--callee NAME")
    return {output: _dump(openapi_from_traffic(traffic, callees[0], source=source), output)}


@contract_app.command()
def draft(
    captures: Annotated[list[Path], typer.Argument(
        metavar="CAPTURE", help="Captures to draft from (several: one contract).")],
    output: Annotated[str, typer.Option(
        "-o", "--output", metavar="PATH",
        help="The contract file to write (--pact: a directory).")],
    openapi: Annotated[bool, typer.Option(
        "--openapi", help="An OpenAPI 3.1 document (per service, when -o is a "
                          "directory) instead of tapproxy's own format.")] = False,
    pact: Annotated[bool, typer.Option(
        "--pact", help="Pact v4 files, one per consumer-provider pair, into -o DIR.")]
    = False,
    callee: Annotated[list[str] | None, typer.Option(
        help="Only calls to this service (repeatable).")] = None,
    service: Services = None,
) -> None:
    """Draft a contract from the calls recorded in captures: a draft passes on the
    traffic it came from and on a re-run of the same tests; review it, then commit it."""
    from tapproxy.contract.draft.own import own_from_traffic
    from tapproxy.contract.draft.pact import pacts_from_traffic
    from tapproxy.contract.draft.traffic import Traffic, gather
    from tapproxy.errors import ContractError

    if openapi and pact:
        raise _fail("--openapi and --pact: draft one kind at a time")
    source = ", ".join(map(str, captures))
    names = _callee_names(service)
    readers: list = []
    with contextlib.ExitStack() as stack:
        try:
            traffic = gather(_records(captures, stack, names, readers))
        except ContractError:
            raise _fail(f"{source}: no answered HTTP exchanges to draft a contract "
                        "from") from None
        for reader in readers:
            _check_tail(reader)  # a capture cut short: nothing drafted from half of it
    if callee:
        ops = [op for op in traffic.operations if op.callee in callee]
        if not ops:
            raise _fail(f"{source}: no calls to {', '.join(callee)} "
                        f"(called: {', '.join(traffic.callees())})")
        traffic = Traffic(ops, traffic.noise, traffic.exchanges)
    if pact:
        out = _out_dir(Path(output), "--pact")
        files = {out / f"{_file_name(a, b)}.json": _dump(doc, Path("x.json"))
                 for (a, b), doc in pacts_from_traffic(traffic).items()}
    elif openapi:
        files = _openapi_files(traffic, output, source)
    else:
        files = {Path(output): _dump(own_from_traffic(traffic, source=source), Path(output))}
    _write(files)
    n = len(traffic.operations)
    for path in files:
        print(f"wrote {path}")
    print(f"{n} operation{'s' * (n != 1)} from {traffic.exchanges} exchanges")
