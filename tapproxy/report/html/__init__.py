"""The self-contained HTML report: one file, opened from disk, that needs no network.

`model` turns records into the page's view model, `page` renders it, `write` reads a
capture and writes the file whole or not at all.
"""

from tapproxy.report.html.write import ReportResult, write_report

__all__ = ["ReportResult", "write_report"]
