"""The recorder's capture file: its header, the writer-thread transforms (route names,
redaction), and how a write failure is said."""

from __future__ import annotations

import sys

from tapproxy.capture.format import new_header
from tapproxy.capture.model import SessionHeader
from tapproxy.capture.redact import Redactor
from tapproxy.capture.routes import RouteTable
from tapproxy.capture.writer import CaptureWriter
from tapproxy.supervisor.options import RecordOptions

__all__ = ["open_writer"]


def _report_write_failure(message: str) -> None:
    # Called once, on the writer thread, the moment the capture stops growing: said at
    # once on stderr (not through logging, which mitmproxy may silence or queue).
    print(f"tapproxy: error: {message}; further records are lost (counted in /stats and "
          "at exit), the proxy goes on forwarding", file=sys.stderr, flush=True)


def _chain(*steps):
    """One writer-thread transform from several (None steps skipped)."""
    steps = [s for s in steps if s is not None]
    if len(steps) <= 1:
        return steps[0] if steps else None

    def run(record):
        for step in steps:
            record = step(record)
        return record

    return run


def _header(opts: RecordOptions) -> SessionHeader:
    """What the capture's header says about how it was recorded."""
    return new_header({
        "listen": str(opts.listen),
        "listeners": {n.name: str(n.listen) for n in opts.listeners},
        "allow_hosts": list(opts.allow_hosts),
        "ignore_hosts": list(opts.ignore_hosts),
        "reverse": {r.name: f"{r.upstream}@{r.listen}" for r in opts.reverse},
        "services": {s.name: f"{s.host}:{s.port}" if s.port else s.host
                     for s in opts.services},
        "redaction": opts.redact,
        "otlp_receive": opts.otlp_receive is not None,
        "inject_traceparent": opts.inject_traceparent,
    })


def open_writer(opts: RecordOptions, routes: RouteTable,
                redactor: Redactor | None) -> tuple[CaptureWriter, SessionHeader]:
    """The writer of `opts.output`, provisional until published, and its header."""
    header = _header(opts)
    # Provisional until the listeners are bound: a recorder that cannot start must not
    # replace the capture a previous run left at the same path.
    # Records built here from mitmproxy's flows are sound by construction: the
    # read-back check (+29 µs a record on the event loop) guards imports instead.
    writer = CaptureWriter(opts.output, header, _chain(routes or None, redactor),
                           opts.queue_size, provisional=True,
                           on_failure=_report_write_failure, check=False)
    return writer, header
