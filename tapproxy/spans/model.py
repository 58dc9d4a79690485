"""Spans as plain values: what synthesis produces and exporters consume.

Ids are ints (128-bit trace, 64-bit span), times epoch nanoseconds, like the capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Finding", "Span", "SpanEvent", "SpanLink"]


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: int
    span_id: int
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time: int
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: str  # client | server | internal (also producer/consumer from received spans)
    service: str  # resource service.name
    start: int
    end: int
    attributes: dict[str, object] = field(default_factory=dict)
    status: str = "unset"  # unset | ok | error
    status_message: str = ""
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    synthesized: bool = True  # False: sent by an instrumented service
    exchange_id: str | None = None
    resource: dict[str, object] = field(default_factory=dict)  # received spans keep theirs
    scope: str = "tapproxy"


@dataclass(frozen=True, slots=True)
class Finding:
    """Something synthesis noticed that a person should know, e.g. a dropped trace context."""

    kind: str  # context_lost
    service: str
    message: str
    exchange_id: str
    test: str | None = None
