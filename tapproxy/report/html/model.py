"""The report's view model: a capture's records turned into plain JSON values for the page.

Pure: records in, dicts out. Rows are the exchanges in the order the waterfall lists
them (each test's call tree depth first, tests in the order they ran), as compact arrays
(see `ROW_FIELDS`); the detail of each exchange is kept apart, aligned with the rows, so
the page decodes it only when one is clicked. Times are milliseconds from the first
thing recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tapproxy.analysis.calltree import CallTree
from tapproxy.analysis.failure import FailureStory, first_failure
from tapproxy.analysis.metrics import Metrics
from tapproxy.capture.model import (
    Exchange,
    Record,
    ResourceSample,
    ServiceLog,
    SessionHeader,
    SpanBatch,
    TestCase,
    WebSocketMessage,
)
from tapproxy.contract.model import Mismatch
from tapproxy.errors import SpansError
from tapproxy.report.html.details import exchange_detail
from tapproxy.report.html.sentspans import Placed, place, span_detail
from tapproxy.report.html.servicemap import edge_figures, layout
from tapproxy.report.mismatches import failure_details
from tapproxy.report.parties import as_shown
from tapproxy.report.story import story_lines
from tapproxy.spans.infer import TEST_SERVICE
from tapproxy.spans.model import Span
from tapproxy.spans.semconv import server_saw_request

__all__ = ["LOG_LIMIT", "ROW_FIELDS", "Recorded", "build_model", "collect"]

#: What each position of a row array holds (the page reads them by these names).
ROW_FIELDS = ("test", "caller", "callee", "method", "target", "status", "error", "start",
              "duration", "server_start", "server_end", "failed", "number", "parent",
              "depth", "inference", "ticks", "role", "mismatches", "span")
LOG_LIMIT = 20_000  # log lines kept in the page; the rest are counted
_TICK_LIMIT = 200
_NO_TEST = "(no test)"


@dataclass
class Recorded:
    """The records a report needs, gathered in one pass."""

    exchanges: list[Exchange] = field(default_factory=list)
    cases: dict[str, TestCase] = field(default_factory=dict)
    frames: dict[str, list[WebSocketMessage]] = field(default_factory=dict)
    logs: list[ServiceLog] = field(default_factory=list)
    samples: list[ResourceSample] = field(default_factory=list)
    instrumented: set[str] = field(default_factory=set)  # services that sent spans
    logs_dropped: int = 0


def collect(records: Iterable[Record], into: Recorded | None = None) -> Recorded:
    """Gather `records` (into `into`, so that what was read before an error is kept)."""
    from tapproxy.spans.otlp import decode_batch

    out = into if into is not None else Recorded()
    for r in records:
        if isinstance(r, Exchange):
            out.exchanges.append(as_shown(r))
        elif isinstance(r, TestCase):
            out.cases[r.name] = r
        elif isinstance(r, WebSocketMessage):
            out.frames.setdefault(r.exchange_id, []).append(r)
        elif isinstance(r, ServiceLog):
            if len(out.logs) < LOG_LIMIT:
                out.logs.append(r)
            else:
                out.logs_dropped += 1
        elif isinstance(r, ResourceSample):
            out.samples.append(r)
        elif isinstance(r, SpanBatch):
            # A payload that does not decode names no service (`tapproxy spans` says why).
            with contextlib.suppress(SpansError):
                out.instrumented.update(s.service for s in decode_batch(r))
    return out


def _ms(ns: int, t0: int) -> float:
    return round((ns - t0) / 1e6, 3)


def _tests(rec: Recorded, sent: Mapping[str | None, list[Span]]
           ) -> list[tuple[str | None, TestCase | None, list[Exchange]]]:
    by_test: dict[str | None, list[Exchange]] = {}
    for x in rec.exchanges:
        by_test.setdefault(x.test, []).append(x)
    names = sorted(rec.cases, key=lambda n: (rec.cases[n].started, n))
    names += sorted((n for n in by_test if n is not None and n not in rec.cases),
                    key=lambda n: min(x.timing.request_start for x in by_test[n]))
    out: list[tuple[str | None, TestCase | None, list[Exchange]]] = [
        (n, rec.cases.get(n), by_test.get(n, [])) for n in names]
    out += [(n, None, []) for n in sent if n is not None and n not in rec.cases
            and n not in by_test]  # spans of a test that recorded no call
    if None in by_test or None in sent:
        out.append((None, None, by_test.get(None, [])))
    return out


def _order(tree: CallTree, placed: Placed) -> list[tuple[int | Span, int, int | Span | None]]:
    """(exchange number or sent span, depth, parent) in the waterfall's order: the call
    tree depth first, a sent span among its parent's child calls by start, the spans with
    no parent in the test last."""

    def start(item: int | Span) -> int:
        return item.start if isinstance(item, Span) else (
            tree.node(item).exchange.timing.request_start)

    def kids(item: int | Span) -> list[int | Span]:
        if isinstance(item, Span):
            return list(placed.kids_of_span(item.span_id))
        spans = placed.under_exchange.get(tree.node(item).exchange.id)
        calls: list[int | Span] = list(tree.kids(item))
        return sorted([*calls, *spans], key=start) if spans else calls

    out: list[tuple[int | Span, int, int | Span | None]] = []
    seen: set[int] = set()
    roots: list[int | Span] = [n.number for n in tree.nodes if n.parent is None]
    stack: list[tuple[int | Span, int, int | Span | None]] = [
        (r, 0, None) for r in reversed([*roots, *placed.orphans])]
    while stack:
        item, depth, parent = stack.pop()
        if isinstance(item, Span):
            if item.span_id in seen:
                continue
            seen.add(item.span_id)
        else:
            depth = tree.node(item).depth
        out.append((item, depth, parent))
        stack.extend((k, depth + 1, item) for k in reversed(kids(item)))
    # Spans whose parents are each other's (a loop a service sent) are reached from no
    # root: they go last too.
    out += [(s, 0, None) for spans in placed.under_span.values() for s in spans
            if s.span_id not in seen and not seen.add(s.span_id)]
    return out


def _roles(story: FailureStory) -> dict[int, str]:
    roles = {c.number: c.role for c in (*story.consequences, *story.others)}
    if story.root is not None:
        roles[story.root.number] = "root"
    if story.uncertain is not None:
        for n in story.uncertain.candidates:
            roles[n] = "candidate"
    return roles


def _story(story: FailureStory, rows_of: Mapping[int, int]) -> dict | None:
    if story.root is None and story.uncertain is None and not story.failures:
        return None
    out: dict = {"lines": story_lines(story, limit=40)[1:],
                 "consequences": [[rows_of[c.number], c.role, c.reason]
                                  for c in story.consequences],
                 "others": [[rows_of[c.number], c.role, c.reason] for c in story.others],
                 "propagation": story.propagation}
    if story.root is not None:
        r = story.root
        out["root"] = {"row": rows_of[r.number], "why": r.why, "label": r.failure.label,
                       "attempt": r.attempt, "attempts": r.attempts}
    if story.uncertain is not None:
        u = story.uncertain
        out["uncertain"] = {"rows": [rows_of[n] for n in u.candidates], "reason": u.reason,
                            "settle": list(u.settle)}
    return out


def _ticks(x: Exchange, frames: Sequence[WebSocketMessage], t0: int) -> list[list]:
    ticks = [[_ms(m.timestamp, t0), 1 if m.from_client else 0, "g"]
             for m in x.grpc_messages[:_TICK_LIMIT]]
    ticks += [[_ms(f.timestamp, t0), 1 if f.from_client else 0, "w"]
              for f in frames[:_TICK_LIMIT]]
    return ticks


def build_model(rec: Recorded, header: SessionHeader | None, capture: str,
                mismatches: Sequence[Mismatch] | None = None,
                problem: str | None = None,
                sent: Mapping[str | None, list[Span]] | None = None) -> tuple[dict, list[dict]]:
    """(the page's summary, the details aligned with its rows). `sent`: the spans
    instrumented services sent, by test (`sentspans.sent_by_test`)."""
    sent = sent or {}
    by_exchange: dict[str, list[Mismatch]] = {}
    for m in mismatches or ():
        if m.exchange_id is not None:
            by_exchange.setdefault(m.exchange_id, []).append(m)
    contract = failure_details(mismatches or ())  # the `why:` text `tapproxy why` gives
    starts = [x.timing.request_start for x in rec.exchanges]
    starts += [c.started for c in rec.cases.values()]
    t0 = min(starts) if starts else (header.created if header else 0)

    services: list[str] = []
    index: dict[str, int] = {}

    def service(name: str) -> int:
        if name not in index:
            index[name] = len(services)
            services.append(name)
        return index[name]

    rows: list[list] = []
    details: list[dict] = []
    tests: list[dict] = []
    overall = Metrics()
    durations: dict[tuple[str, str], list[float]] = {}
    for t_index, (name, case, exchanges) in enumerate(_tests(rec, sent)):
        outcome = case.outcome if case else None
        story = first_failure(exchanges, test=name, outcome=outcome, contract=contract)
        tree = story.tree
        spans = sent.get(name, [])
        order = _order(tree, place(exchanges, spans))
        first = len(rows)
        rows_of = {n: first + i for i, (n, _, _) in enumerate(order) if isinstance(n, int)}
        span_rows = {s.span_id: first + i for i, (s, _, _) in enumerate(order)
                     if isinstance(s, Span)}

        roles = _roles(story)
        per_test = Metrics()
        last_tick = None  # WebSocket frames come after their handshake: the axis reaches them
        for n, depth, parent in order:
            if isinstance(n, Span):
                up = -1 if parent is None else (span_rows[parent.span_id] if isinstance(
                    parent, Span) else rows_of[parent])
                rows.append(_span_row(n, t_index, service(n.service), t0, up, depth))
                details.append(span_detail(n, name, t0))
                continue
            node = tree.node(n)
            x, t = node.exchange, node.exchange.timing
            overall.add(x)
            per_test.add(x)
            durations.setdefault((x.caller.name, x.callee.name), []).append(
                round(t.duration_ns / 1e6, 3))
            server = server_saw_request(x)
            s_start = t.request_end or t.request_start
            s_end = t.response_end or t.response_start or t.end
            frames = rec.frames.get(x.id, ())
            ticks = _ticks(x, frames, t0)
            if ticks:
                last_tick = max(last_tick or 0, max(tick[0] for tick in ticks))
            rows.append([
                t_index, service(x.caller.name), service(x.callee.name), x.request.method,
                x.route or x.request.path, x.status, x.error.kind if x.error else None,
                _ms(t.request_start, t0), round(t.duration_ns / 1e6, 3),
                _ms(min(s_start, s_end), t0) if server else None,
                _ms(s_end, t0) if server else None, int(x.failed), n,
                rows_of[node.parent] if node.parent is not None else -1, node.depth,
                node.inference, ticks, roles.get(n, ""),
                len(by_exchange.get(x.id, ())), None])
            details.append(exchange_detail(x, frames, by_exchange.get(x.id, ())))
        # The time axis: the test's calls (its set-up and teardown would crowd them into
        # a corner), else the test itself.
        begin = [x.timing.request_start for x in exchanges]
        end = [x.timing.end for x in exchanges]
        if spans:
            begin += [s.start for s in spans]
            end += [s.end for s in spans]
        if case is not None and not exchanges:
            begin.append(case.started)
            end.append(case.ended or case.started)
        tests.append({
            "name": name if name is not None else _NO_TEST, "outcome": outcome,
            "none": name is None, "start": _ms(min(begin), t0) if begin else 0,
            "end": max(_ms(max(end), t0) if end else 0, last_tick or 0),
            "duration": round((case.ended - case.started) / 1e6, 3)
            if case is not None and case.ended else None,
            "first": first, "count": len(rows_of), "spans": len(span_rows),
            "failed": sum(1 for x in exchanges if x.failed),
            "story": _story(story, rows_of),
            "edges": [[e["a"], e["b"], e["count"], e["errors"], e["p95"]] for e in
                      edge_figures(per_test, {s: service(s) for s in _parties(exchanges)})],
        })
    for r in (*rec.logs, *rec.samples):
        service(r.service)
    edges = edge_figures(overall, index, durations)
    row_of_id = by_row(details)
    positions = layout(services, [(e["a"], e["b"]) for e in edges], TEST_SERVICE)
    summary = {
        "capture": capture, "tool": header.tool if header else None,
        "created": header.created if header else None, "t0": t0, "problem": problem,
        "fields": ROW_FIELDS, "services": services,
        "instrumented": [i for i, s in enumerate(services) if s in rec.instrumented],
        "positions": positions, "rows": rows, "tests": tests, "edges": edges,
        "logs": [[index[r.service], _ms(r.timestamp, t0), 1 if r.stream == "stderr" else 0,
                  r.line[:2000]] for r in rec.logs],
        "logs_dropped": rec.logs_dropped,
        "samples": [[index[s.service], _ms(s.timestamp, t0), round(s.cpu_percent, 1), s.rss]
                    for s in rec.samples],
        "mismatches": None if mismatches is None else [_mismatch_row(m, row_of_id)
                                                       for m in mismatches],
    }
    return summary, details


def _span_row(s: Span, test: int, service: int, t0: int, parent: int, depth: int) -> list:
    """A sent span's row: its service both ends, its kind and name where a call has its
    method and target, and its status (unset, ok or error) last."""
    return [test, service, service, s.kind.upper(), s.name, None, None, _ms(s.start, t0),
            round(max(0, s.end - s.start) / 1e6, 3), None, None, int(s.status == "error"),
            None, parent, depth, "span", [], "", 0, s.status]


def by_row(details: Sequence[dict]) -> dict[str, int]:
    """Exchange id → row index (rows of sent spans have none)."""
    return {d["id"]: i for i, d in enumerate(details) if "id" in d}


def _mismatch_row(m: Mismatch, rows: Mapping[str, int]) -> dict:
    return {"row": rows.get(m.exchange_id, -1) if m.exchange_id else -1, "test": m.test,
            "kind": m.kind, "message": m.message, "where": m.where, "side": m.side,
            "expected": m.expected, "actual": m.actual, "contract": str(m.contract),
            "caller": m.caller, "callee": m.callee}


def _parties(exchanges: Iterable[Exchange]) -> set[str]:
    return {p for x in exchanges for p in (x.caller.name, x.callee.name)}
