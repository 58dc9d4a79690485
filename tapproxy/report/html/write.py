"""Reading a capture and writing its HTML report: the I/O around `model` and `page`.

A damaged or cut-off capture still gives a report of every complete record, with where
the reading stopped (`ReportResult.problem`, also a banner in the page). The file is
written whole or not at all (`atomic_output`); a path that cannot be written is a
ReportError before the capture is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tapproxy.atomic import atomic_output
from tapproxy.capture.format import open_capture
from tapproxy.contract.model import Contract
from tapproxy.errors import CaptureError, ReportError
from tapproxy.report.html.model import Recorded, build_model, collect
from tapproxy.report.html.page import render_page
from tapproxy.report.html.sentspans import sent_by_test

__all__ = ["ReportResult", "check_writable", "report_beside", "report_path", "write_report"]


@dataclass(frozen=True, slots=True)
class ReportResult:
    path: Path
    exchanges: int
    tests: int
    size: int  # bytes written
    problem: str | None  # where a damaged capture stopped being read, else None
    mismatches: int | None = None  # with contracts: how many were found


def check_writable(output: Path) -> None:
    """ReportError unless a file can be created at `output`."""
    parent = output.parent
    if output.is_dir():
        raise ReportError(f"{output}: is a directory; give a file name for the report")
    if not parent.is_dir():
        raise ReportError(f"{output}: cannot write: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportError(f"{output}: cannot write: permission denied in {parent}")


def write_report(capture: Path, output: Path, contracts: Sequence[Contract] = (),
                 progress: Callable[[int], None] | None = None) -> ReportResult:
    """Read `capture`, check it against `contracts` if any, write the report to `output`.

    `progress` is called now and then with the byte offset read so far."""
    check_writable(output)
    rec = Recorded()
    problem = None
    with open_capture(capture) as reader:
        header = reader.header

        def records():
            for n, r in enumerate(reader):
                if progress is not None and n % 512 == 0:
                    progress(reader.position[1])
                yield r

        try:
            collect(records(), rec)
        except CaptureError as e:  # damaged mid-file: what came before is complete
            problem = f"{e}; the records before it are shown"
        else:
            if reader.truncated:
                problem = reader.problem
    mismatches = None
    if contracts:
        from tapproxy.contract.check import check_records

        mismatches = check_records([*rec.cases.values(), *rec.exchanges], contracts).mismatches
    # Spans services sent are joined as `tapproxy spans` joins them: a second reading,
    # only when the capture holds some.
    sent = sent_by_test(capture) if rec.instrumented else None
    summary, details = build_model(rec, header, str(capture), mismatches, problem, sent)
    html = render_page(summary, details, capture.name)
    try:
        with atomic_output(output) as f:
            f.write(html)
    except OSError as e:
        raise ReportError(f"{output}: cannot write: {e.strerror or e}") from None
    return ReportResult(output, sum(t["count"] for t in summary["tests"]),
                        len(summary["tests"]),
                        len(html.encode("utf-8")), problem,
                        None if mismatches is None else len(mismatches))


def report_path(capture: Path) -> Path:
    """Where the report of `capture` goes beside it: the same name, `.html`."""
    return capture.with_suffix(".html")


def report_beside(capture: Path) -> Path | None:
    """Write the report of `capture` beside it (`pytest --tapproxy` at session end); what
    kept it from being written, or where a damaged capture stopped, is one line on
    stderr. The report path, or None when none was written."""
    import sys

    from tapproxy.errors import TapproxyError

    out = report_path(capture)
    try:
        result = write_report(capture, out)
    except TapproxyError as e:
        print(f"tapproxy: no report: {e}", file=sys.stderr)
        return None
    if result.problem is not None:
        print(f"tapproxy: report of an incomplete capture: {result.problem}", file=sys.stderr)
    return out
