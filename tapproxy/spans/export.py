"""Sending spans out: OTLP/HTTP (the SDK's own exporter) and OTLP/JSON files."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import TextIO
from urllib.parse import urlsplit

from tapproxy.errors import SpansError
from tapproxy.spans.model import Span
from tapproxy.spans.otlp import to_otlp_json, to_readable

__all__ = ["SPANS_PER_REQUEST", "OtlpHttpExporter", "sdk_exporter", "traces_url",
           "write_otlp_json"]

#: Spans per OTLP request: a test of 100,000 calls as one request held its whole JSON
#: document (1.2 GB) in memory, and collectors refuse requests over a few MiB anyway.
SPANS_PER_REQUEST = 1000


def _chunks(spans: Iterable[Span]) -> Iterator[list[Span]]:
    chunk: list[Span] = []
    for s in spans:
        chunk.append(s)
        if len(chunk) == SPANS_PER_REQUEST:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def traces_url(url: str) -> str:
    """`http://host:4318` or a full `…/v1/traces` URL → the traces endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SpansError(f"bad OTLP URL {url!r}: expected http(s)://HOST:PORT[/v1/traces]")
    return url if parts.path not in ("", "/") else url.rstrip("/") + "/v1/traces"


def sdk_exporter(url: str, timeout: float = 10):
    """opentelemetry-sdk's OTLP/HTTP protobuf span exporter for `url` (base or full)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=traces_url(url), timeout=timeout)


@contextlib.contextmanager
def _sdk_quiet() -> Iterator[None]:
    """Hold back the SDK's own log lines (a retry line per attempt): the caller reports
    the outcome itself, in one line."""
    logger = logging.getLogger("opentelemetry")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


class OtlpHttpExporter:
    """OTLP/HTTP protobuf export through opentelemetry-sdk's exporter; failures raise."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url = traces_url(url)
        self._exporter = sdk_exporter(self.url, timeout)
        self.exported = 0

    def export(self, spans: list[Span]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for chunk in _chunks(spans):
            with _sdk_quiet():
                result = self._exporter.export(to_readable(chunk))
            if result is not SpanExportResult.SUCCESS:
                raise SpansError(f"{self.url}: the OTLP endpoint did not accept the spans "
                                 "(is a collector listening there?)")
            self.exported += len(chunk)

    def close(self) -> None:
        with _sdk_quiet():
            self._exporter.shutdown()


def write_otlp_json(spans: Iterable[Span], out: TextIO) -> None:
    """OTLP/JSON ExportTraceServiceRequests, one per line (the collector's file format),
    of at most SPANS_PER_REQUEST spans each."""
    for chunk in _chunks(spans):
        out.write(json.dumps(to_otlp_json(chunk), separators=(",", ":")) + "\n")
