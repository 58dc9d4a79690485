"""Spans that instrumented services sent (OTLP), placed in the report's waterfall.

The joining is `tapproxy spans`' own (`spans_of_capture`: synthesized and received spans
per test, a received SERVER span replacing the synthesized one). Here a received span
that is an exchange's own client or server half is left to that exchange's row; every
other one becomes a row under its parent: an exchange (by either half) or another sent
span. A span whose parent is neither goes at the end of its test's waterfall.

Span values are recorded by a service, so untrusted: they become JSON strings the page
shows as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tapproxy.capture.model import Exchange
from tapproxy.errors import TapproxyError
from tapproxy.spans.context import parse_traceparent, span_ids_for
from tapproxy.spans.model import Span

__all__ = ["Placed", "place", "sent_by_test", "span_detail"]

_VALUE_LIMIT = 4096


def sent_by_test(capture: Path) -> dict[str | None, list[Span]]:
    """The spans services sent, by test (None: of no test, or of a trace no exchange is
    in). Empty when they cannot be read: the report of the exchanges still stands."""
    from tapproxy.spans.stream import spans_of_capture

    out: dict[str | None, list[Span]] = {}
    try:
        for group in spans_of_capture(capture):
            sent = [s for s in group.spans if not s.synthesized]
            if sent:
                out.setdefault(group.test, []).extend(sent)
    except TapproxyError:  # a damaged capture: the report says where it stopped
        return {}
    return out


def _halves(exchanges: Iterable[Exchange], sent: Iterable[Span]) -> dict[int, str]:
    """Span id → exchange id, for the spans that are an exchange's own client or server
    half (synthesized, or sent by an instrumented caller or callee)."""
    clients: dict[int, str] = {}
    halves: dict[int, str] = {}
    for x in exchanges:
        client, server = span_ids_for(x.id)
        clients[client] = x.id
        halves[server] = x.id
        tp = parse_traceparent(x.request.headers.get("traceparent"))
        if tp is not None:  # the caller's own client span, or the one tapproxy injected
            clients.setdefault(tp.parent_id, x.id)
    # A sent SERVER span whose parent is a call's client half is that call seen from
    # inside the callee (what merge_received replaces the synthesized one with).
    for s in sent:
        if s.kind == "server" and s.parent_span_id in clients:
            halves.setdefault(s.span_id, clients[s.parent_span_id])
    for span_id, xid in clients.items():
        halves.setdefault(span_id, xid)
    return halves


@dataclass
class Placed:
    """The sent spans of one test that get rows, and where."""

    under_exchange: dict[str, list[Span]] = field(default_factory=dict)  # by exchange id
    under_span: dict[int, list[Span]] = field(default_factory=dict)  # by parent span id
    orphans: list[Span] = field(default_factory=list)  # no parent in the test

    def kids_of_span(self, span_id: int) -> list[Span]:
        return self.under_span.get(span_id, [])


def place(exchanges: Iterable[Exchange], sent: Iterable[Span]) -> Placed:
    sent = list(sent)
    halves = _halves(exchanges, sent)
    shown = {s.span_id for s in sent if s.span_id not in halves}
    out = Placed()
    for s in sorted(sent, key=lambda s: (s.start, s.span_id)):
        if s.span_id not in shown:
            continue
        p = s.parent_span_id
        if p is not None and p in halves:
            out.under_exchange.setdefault(halves[p], []).append(s)
        elif p is not None and p in shown and p != s.span_id:
            out.under_span.setdefault(p, []).append(s)
        else:
            out.orphans.append(s)
    return out


def _text(v: object) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT] + "…"


def _pairs(values: Mapping[str, object]) -> list[list[str]]:
    return [[_text(k), _text(v)] for k, v in values.items()]


def status_text(s: Span) -> str:
    return s.status + (f": {s.status_message}" if s.status_message else "")


def span_detail(s: Span, test: str | None, t0: int) -> dict:
    """One sent span's detail as plain JSON values (event times in ms from its start)."""
    return {
        "test": test,
        "span": {
            "service": s.service, "kind": s.kind.upper(), "name": s.name,
            "status": status_text(s), "scope": s.scope,
            "trace_id": f"{s.trace_id:032x}", "span_id": f"{s.span_id:016x}",
            "parent_span_id": None if s.parent_span_id is None else f"{s.parent_span_id:016x}",
            "start": round((s.start - t0) / 1e6, 3),
            "attributes": _pairs(s.attributes),
            "events": [[_text(e.name), round((e.time - s.start) / 1e6, 3), _pairs(e.attributes)]
                       for e in s.events[:100]],
            "resource": _pairs(s.resource),
        },
    }
