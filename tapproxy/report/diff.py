"""`tapproxy diff` for people (80 columns, expected beside actual) and for tools (JSON
lines). Pure: lines and dicts, printed by the CLI."""

from __future__ import annotations

import json
import re

from tapproxy.diff.model import AlignKey, Change, PairDiff, Side, Summary, Unpaired
from tapproxy.report.columns import cut_end, cut_middle
from tapproxy.report.printable import printable

__all__ = ["DiffText", "change_json", "item_json", "summary_json", "summary_lines"]

WIDTH = 80
MAX_CHANGES = 40  # of one pair, in text: a person scans; --format json has them all
_LABEL, _VALUE = 26, 24  # 4 + 26 + 1 + 24 + 1 + 24 = 80
_PREFIX = {"request.query": "query", "request.header": "req header",
           "response.header": "header", "response.trailer": "trailer",
           "request.body": "req body", "response.body": "body",
           "request.messages": "req msg", "response.messages": "msg"}
# Parts whose values are JSON (shown as JSON, so that 5 and "5" look different).
_JSON_PARTS = ("request.query", "request.body", "response.body", "request.messages",
               "response.messages")
_MESSAGE_PARTS = ("request.messages", "response.messages")
# A whole message (`/3`: its text, or a binary one's size and hash), a line of a text
# body or message: shown as they are, not as JSON strings.
_WHOLE_MESSAGE = re.compile(r"/\d+")
_LINE = re.compile(r"(?:/\d+ )?line \d+")
_TUNNEL_PATHS = {"bytes_from_client": "bytes to server", "bytes_from_server": "bytes to client",
                 "reason": "relayed as"}


def _label(c: Change) -> str:
    if c.part == "grpc-status" and c.path:
        return "grpc-message"
    if c.part == "tunnel":
        return _TUNNEL_PATHS.get(c.path, c.path)
    prefix = _PREFIX.get(c.part, c.part)
    return f"{prefix} {c.path}" if c.path else prefix


def _value(c: Change, value: object, present: bool) -> str:
    if not present:
        return "(absent)"
    if value is None and c.part in ("error", "close"):
        return "(none)"  # an answer where the other side failed; no close frame
    # Text lines, a body or message described as a whole ("(empty)", "12 bytes
    # sha256:…", a text message), as they are; JSON values as JSON.
    raw = bool(_LINE.fullmatch(c.path)) or (isinstance(value, str) and (
        c.path == "" or (c.part in _MESSAGE_PARTS and _WHOLE_MESSAGE.fullmatch(c.path))))
    if c.part in _JSON_PARTS and not raw:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = "null" if value is None else str(value)
    return printable(text)


def _change_lines(c: Change, mark: str = " ") -> list[str]:
    label = printable(_label(c))
    exp = _value(c, c.expected, c.kind != "added")
    act = _value(c, c.actual, c.kind != "removed")
    if c.kind == "type":
        exp, act = f"{exp} ({_jtype(c.expected)})", f"{act} ({_jtype(c.actual)})"
    if len(exp) <= _VALUE and len(act) <= _VALUE and len(label) <= _LABEL:
        return [f"  {mark} {label:<{_LABEL}} {exp:<{_VALUE}} {act}".rstrip()]
    # Too wide for the columns: the values under the label, each on a line of its own.
    return [cut_middle(f"  {mark} {label}", WIDTH),
            cut_end(f"      expected: {exp}", WIDTH), cut_end(f"      actual:   {act}", WIDTH)]


def _jtype(value: object) -> str:
    from tapproxy.diff.structure import json_type

    return json_type(value)


def _route(k: AlignKey) -> str:
    what = f"{k.method} {k.route}" if k.route else k.method
    return printable(f"{k.caller} → {k.callee}  {what}")


class DiffText:
    """Lines for each item as it comes; a test's name once, above its first item."""

    def __init__(self, expected: str, actual: str, show_noise: bool = False) -> None:
        self._names = (expected, actual)
        self._show_noise = show_noise
        self._test: object = ()  # no test named yet (None is "no test")
        self._started = False

    def head(self) -> list[str]:
        # Paths whole, even past 80 columns: a cut path could not be pasted.
        a, b = (printable(n) for n in self._names)
        return [f"expected: {a}", f"actual:   {b}"]

    def _test_line(self, test: str | None) -> list[str]:
        if test == self._test:
            return []
        self._test = test
        return [cut_middle(f"test {printable(test)}" if test else "(no test)", WIDTH)]

    def lines(self, item: PairDiff | Unpaired) -> list[str]:
        out = self._test_line(item.key.test)
        if isinstance(item, Unpaired):
            mark, where = ("-", "expected only") if item.kind == "removed" else \
                ("+", "actual only")
            tail = f"  {printable(item.side.outcome)}  ({where})"
            out.append(cut_middle(f"{mark} #{item.side.number}  {_route(item.key)}",
                                  WIDTH - len(tail)) + tail)
            return out
        mark = "≠" if item.changes else "="
        heading = f"{mark} #{item.expected.number} ↔ #{item.actual.number}  {_route(item.key)}"
        out.append(cut_middle(heading, WIDTH))
        if item.actual_key is not None:  # two calls of one capture (--exchange)
            out.append(cut_middle(f"  #{item.actual.number}: {_route(item.actual_key)}",
                                  WIDTH))
        if not item.changes:
            out.append("    (equal)")
        else:
            out.append(f"    {'':<{_LABEL}} {'expected':<{_VALUE}} actual")
        for c in item.changes[:MAX_CHANGES]:
            out += _change_lines(c)
        if len(item.changes) > MAX_CHANGES:
            more = len(item.changes) - MAX_CHANGES
            out.append(f"    … and {more:,} more (--format json lists every one)")
        if self._show_noise:
            for c in item.noise:
                out += _change_lines(c, "~")
        if item.noise_count and item.changes:
            out.append(f"    ignored as noise: {_fields(item.noise_count)}")
        return out


def _fields(n: int) -> str:
    return f"{n:,} field" + ("" if n == 1 else "s")


def summary_lines(summary: Summary, what: str = "paired exchanges") -> list[str]:
    """The closing lines: counts, noise, and with --show-noise what was learned."""
    s = summary
    if s.equal:
        text = f"no differences: {s.pairs:,} {what} equal"
    else:
        text = f"{s.differing:,} of {s.pairs:,} {what} differ"
        if what == "paired exchanges" or s.removed or s.added:
            text += f", {s.removed:,} removed, {s.added:,} added"
    noise = f"ignored as noise: {_fields(s.noise_fields)}"
    lines = [f"{text}; {noise}"] if len(text) + len(noise) + 2 <= WIDTH else [text, noise]
    if s.learned:
        lines.append("learned noise (route, field):")
        lines += [cut_middle(f"  {printable(r)}  {printable(p)}", WIDTH) for r, p in s.learned]
    return lines


def change_json(c: Change) -> dict:
    d: dict = {"part": c.part, "path": c.path, "kind": c.kind}
    if c.kind != "added":
        d["expected"] = c.expected
    if c.kind != "removed":
        d["actual"] = c.actual
    return d


def _side_json(s: Side) -> dict:
    return {"number": s.number, "id": s.id, "outcome": s.outcome,
            "duration_ms": round(s.duration_ns / 1e6, 3)}


def item_json(item: PairDiff | Unpaired) -> dict:
    k = item.key
    d: dict = {"test": k.test, "caller": k.caller, "callee": k.callee, "method": k.method,
               "route": k.route}
    if isinstance(item, Unpaired):
        return {"kind": item.kind, **d, "exchange": _side_json(item.side)}
    d = {"kind": "differs" if item.changes else "equal", **d,
         "expected": _side_json(item.expected), "actual": _side_json(item.actual),
         "changes": [change_json(c) for c in item.changes], "noise_fields": item.noise_count}
    if item.noise:
        d["noise"] = [change_json(c) for c in item.noise]
    return d


def summary_json(summary: Summary) -> dict:
    s = summary
    d = {"kind": "summary", "equal": s.equal, "pairs": s.pairs, "differing": s.differing,
         "removed": s.removed, "added": s.added, "noise_fields": s.noise_fields}
    if s.learned:
        d["learned_noise"] = [{"route": r, "pointer": p} for r, p in s.learned]
    return d

