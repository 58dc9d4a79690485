"""The nearest recorded requests to one nothing matched, and how each differs.

Ranked by how many criteria agree, then by the same test, then by how much of the path
agrees; each with ✓/✗ per criterion and, for a body that differs, its JSON differences
by pointer (noise masked on both sides), else its size. Pure: records in, lines out.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from tapproxy.capture.model import Exchange, is_grpc_content_type
from tapproxy.errors import CaptureError
from tapproxy.replay.index import CaptureIndex, Entry, recorded_view
from tapproxy.replay.matching import Mask, RequestView, body_key, parse_json_body, query_key
from tapproxy.report.columns import cut_end, cut_middle, short_test_name
from tapproxy.report.printable import printable

__all__ = ["Candidate", "body_differences", "miss_lines", "nearest"]

WIDTH = 80
_DIFFS = 4  # body differences shown per candidate
_SHORTLIST = 12  # candidates whose bodies are compared (each is read from the file)


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    checks: tuple[tuple[str, bool], ...]  # (criterion, agrees)

    @property
    def agreeing(self) -> int:
        return sum(ok for _, ok in self.checks)


def _checks(index: CaptureIndex, entry: Entry, view: RequestView, qkey: bytes,
            bkey: tuple | None) -> tuple[tuple[str, bool], ...]:
    """✓/✗ per criterion; the body's only with `bkey` (it costs a read of the record)."""
    out = []
    for c in index.criteria:
        if c == "method":
            ok = entry.method.upper() == view.method.upper()
        elif c == "path":
            ok = entry.path == view.path
        elif c == "query":
            ok = entry.query == view.query or (
                bool(entry.query) and bool(view.query)
                and query_key(entry.query, index.mask) == qkey)
        elif bkey is None:
            continue
        else:
            ok = index.body_key_of(entry) == bkey
        out.append((c, ok))
    return tuple(out)


def nearest(index: CaptureIndex, view: RequestView, callee: str | None, test: str | None,
            limit: int = 3) -> list[Candidate]:
    """The `limit` recorded requests nearest to `view` (to `callee`'s, when known):
    ranked on method, path and query first, then the best few on their bodies too."""
    mask = index.mask
    qkey, bkey = query_key(view.query, mask), body_key(view, mask)
    pool = index.by_callee.get(callee, []) if callee else range(len(index.entries))

    def rank(c: Candidate) -> tuple:
        e = c.entry
        return (-c.agreeing, e.test != test, -_common(e.path, view.path), e.number)

    first = heapq.nsmallest(
        _SHORTLIST, (Candidate(index.entries[i],
                               _checks(index, index.entries[i], view, qkey, None))
                     for i in pool), key=rank)
    full = [Candidate(c.entry, _checks(index, c.entry, view, qkey, bkey)) for c in first]
    return sorted(full, key=rank)[:limit]


def _common(a: str, b: str) -> int:
    """How many leading characters two paths share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def body_differences(recorded: Exchange, view: RequestView, mask: Mask) -> list[str]:
    """How the incoming body differs from the recorded one, a phrase each."""
    theirs = recorded_view(recorded)
    if is_grpc_content_type(theirs.content_type) and theirs.whole_sha256 is None:
        return _message_differences(theirs.body, view.body)
    if theirs.whole_sha256 is not None:
        return [f"recorded {theirs.whole_sha256.hex()[:12]}… ({recorded.request.size} "
                f"bytes, kept in part), got {len(view.body)} bytes"]
    try:
        old, new = mask(parse_json_body(theirs)), mask(parse_json_body(view))
    except (ValueError, RecursionError, CaptureError):
        return [f"recorded {len(theirs.body)} bytes, got {len(view.body)} bytes"]
    out: list[str] = []
    _diff(old, new, "", out)
    return out


def _message_differences(old: bytes, new: bytes) -> list[str]:
    """gRPC request messages, each decoded by field number (as `protoc --decode_raw`),
    compared line by line: the first line of each message that differs."""
    from tapproxy.capture.grpc import iter_messages
    from tapproxy.capture.protobuf import decode_raw

    def lines(body: bytes) -> list[list[str]]:
        return [(decode_raw(data) or f"<{len(data)} bytes>").splitlines()
                for _, data in iter_messages(body)]

    before, after = lines(old), lines(new)
    out = []
    if len(before) != len(after):
        out.append(f"messages: recorded {len(before)}, got {len(after)}")
    for n, (a, b) in enumerate(zip(before, after, strict=False), 1):
        for x, y in zip([*a, "(end)"], [*b, "(end)"], strict=False):
            if x != y:
                out.append(f"message {n}: recorded {x.strip()}, got {y.strip()}")
                break
    return out


def _show(v: object) -> str:
    import json

    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _diff(old: object, new: object, pointer: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(old.keys() | new.keys()):
            p = f"{pointer}/{str(k).replace('~', '~0').replace('/', '~1')}"
            if k not in new:
                out.append(f"{p}: recorded {_show(old[k])}, missing")
            elif k not in old:
                out.append(f"{p}: not recorded, got {_show(new[k])}")
            else:
                _diff(old[k], new[k], p, out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{pointer}/{i}", out)
        return
    if old != new or type(old) is not type(new):
        out.append(f"{pointer or '/'}: recorded {_show(old)}, got {_show(new)}")


def _request_line(method: str, path: str, query: str, width: int) -> str:
    target = path + (f"?{query}" if query else "")
    return printable(f"{method} {cut_middle(target, max(8, width - len(method) - 1))}")


def miss_lines(index: CaptureIndex, view: RequestView, callee: str | None,
               test: str | None, candidates: list[Candidate]) -> list[str]:
    """The near-miss table: what came, then the nearest recorded requests, ≤ 80 columns."""
    where = f" to {callee}" if callee else ""
    lines = [cut_end(f"no recorded answer for {_request_line(view.method, view.path,
                                                             view.query, 50)}{where}",
                     WIDTH)]
    if test:
        lines.append(cut_end(printable(f"  in test {short_test_name(test)}"), WIDTH))
    if not candidates:
        lines.append("  nothing was recorded" + (f" for {callee}" if callee else ""))
        return lines
    lines.append("nearest recorded requests:")
    for c in candidates:
        e = c.entry
        marks = " ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in c.checks)
        head = f"  #{e.number:<5} {_request_line(e.method, e.path, e.query, 32)}"
        lines.append(f"{head:<42} {marks}"[:WIDTH])
        if e.test and e.test != test:
            lines.append(cut_end(printable(f"         in test {short_test_name(e.test)}"),
                                 WIDTH))
        if not dict(c.checks).get("body", True):
            diffs = body_differences(index.exchange(e), view, index.mask)
            for d in diffs[:_DIFFS]:
                lines.append(cut_end(printable(f"         body {d}"), WIDTH))
            if len(diffs) > _DIFFS:
                lines.append(f"         body: {len(diffs) - _DIFFS} more differences")
    return lines
