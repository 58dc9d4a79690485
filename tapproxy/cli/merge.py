"""`tapproxy merge`: captures (the parts of a `--workers N` run, xdist workers') into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tapproxy.cli.app import app
from tapproxy.errors import UsageError


@app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(
        metavar="PARTS...", help="Captures to merge, e.g. run.worker1.tap run.worker2.tap.",
        show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Capture file to write.")],
) -> None:
    """Merge capture parts into OUTPUT, records in the order they were complete.

    A part cut short (its worker was killed) gives its complete records; a test case
    every part recorded is written once."""
    from tapproxy.capture.merge import merge_interleaved

    resolved = {p.resolve() for p in parts}
    if output.resolve() in resolved:
        raise UsageError(f"-o {output}: is also one of the parts; write elsewhere")
    count = merge_interleaved(parts, output, {"merged_by": "tapproxy merge"})
    print(f"# {count} records from {len(parts)} parts merged into {output}", flush=True)
