"""A capture to spans, one test case at a time, so memory does not grow with the file.

A test's exchanges are held until its TestCase record (written when it closes) arrives,
then turned into spans and released. Exchanges of no test are grouped in windows of
`window` exchanges. Spans that instrumented services sent to the proxy are read in a
first pass (only when the capture says it received some) and merged per trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tapproxy.capture.format import open_capture
from tapproxy.capture.model import Exchange, Record, SpanBatch, TestCase
from tapproxy.capture.routes import RouteTable
from tapproxy.errors import SpansError
from tapproxy.spans.infer import Synthesizer
from tapproxy.spans.model import Finding, Span
from tapproxy.spans.otlp import decode_batch

__all__ = ["SpanGroup", "merge_received", "spans_of_capture"]


@dataclass
class SpanGroup:
    """The spans of one test case (test None: exchanges of no test, or received only)."""

    test: str | None
    outcome: str | None
    spans: list[Span]
    findings: list[Finding] = field(default_factory=list)
    exchanges: int = 0


def merge_received(synth: list[Span], received: list[Span]) -> list[Span]:
    """Synthesized and received spans together, the real one winning where both exist.

    A received SERVER span with the same trace and parent as a synthesized one is the same
    request seen from inside the service: the synthesized span is dropped and its children
    re-parented to the real one.
    """
    if not received:
        return synth
    real_servers = {(s.trace_id, s.parent_span_id): s.span_id
                    for s in received if s.kind == "server"}
    replaced: dict[int, int] = {}
    kept: list[Span] = []
    for s in synth:
        real = real_servers.get((s.trace_id, s.parent_span_id)) if s.kind == "server" else None
        if real is not None:
            replaced[s.span_id] = real
        else:
            kept.append(s)
    if replaced:
        kept = [dataclasses.replace(s, parent_span_id=replaced[s.parent_span_id])
                if s.parent_span_id in replaced else s for s in kept]
    return kept + received


def _received_by_trace(path: Path) -> dict[int, list[Span]]:
    by_trace: dict[int, list[Span]] = {}
    with open_capture(path) as reader:
        for r in reader:
            if isinstance(r, SpanBatch):
                try:
                    spans = list(decode_batch(r))
                except SpansError as e:  # a damaged payload is the capture's problem
                    raise reader.malformed(str(e)) from None
                for s in spans:
                    by_trace.setdefault(s.trace_id, []).append(s)
    return by_trace


def spans_of_capture(
    path: Path,
    bodies: bool = False,
    window: int = 10_000,
    on_tail: Callable[[str], None] | None = None,
    routes: RouteTable | Callable[[Record], Record] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[SpanGroup]:
    """Yield the spans of each test case as soon as the capture has all of it.

    `routes` names the route of exchanges the capture does not know one for (or any
    record transform: `--service` names too). `progress` is called now and then with
    the byte offset read so far."""
    with open_capture(path) as reader:
        salt = str(reader.header.created)
        received = _received_by_trace(path) if reader.header.meta.get("otlp_receive") else {}
        synth = Synthesizer(salt, bodies)
        pending: dict[str | None, list[Exchange]] = {}
        done: set[str] = set()  # tests whose span is out: late exchanges join, no new span

        def flush(test: str | None, case: TestCase | None) -> SpanGroup:
            exchanges = pending.pop(test, [])
            spans, findings = synth.group(exchanges, case, test, test not in done)
            if test is not None:
                done.add(test)
            if received:
                traces = {s.trace_id for s in spans}
                spans = merge_received(spans, [s for t in traces for s in received.pop(t, ())])
            return SpanGroup(test, case.outcome if case else None, spans, findings,
                             len(exchanges))

        for n, r in enumerate(reader):
            if progress is not None and n % 64 == 0:
                progress(reader.position[1])
            if isinstance(r, Exchange):
                pending.setdefault(r.test, []).append(routes(r) if routes else r)
                if r.test is None and len(pending[None]) >= window:
                    yield flush(None, None)
            elif isinstance(r, TestCase):
                yield flush(r.name, r)
        for test in list(pending):
            yield flush(test, None)
        if received:  # traces no recorded exchange belongs to
            yield SpanGroup(None, None, [s for spans in received.values() for s in spans])
        if reader.truncated and on_tail is not None:
            on_tail(reader.problem or "")
