"""Metrics as an 80-column table and as JSON, and the tally of tunnels beside them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tapproxy.analysis.metrics import Metrics, Row
from tapproxy.capture.model import Tunnel
from tapproxy.report.columns import cut_middle
from tapproxy.report.parties import party_name
from tapproxy.report.printable import printable

__all__ = ["TunnelTally", "metrics_json", "stats_lines"]


def _n(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _bytes(n: int) -> str:
    for unit in ("B", "k", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


_LABEL = 21  # with the figures: 79 columns
_HEAD = f"{'count':>6}{'err%':>6}{'4xx':>4}{'/s':>6}{'p50':>6}{'p95':>6}{'p99':>6}" \
        f"{'max':>6}{'in':>6}{'out':>6}"


def _rate(r: Row) -> str:
    """Calls per second, where it means something: over at least 2 calls and 1 s (one
    call, or a burst within a few ms, would read as hundreds per second)."""
    rate = r.throughput_per_s
    if r.count < 2 or not rate or r.count / rate < 1:
        return "-"
    return _n(rate)


def _labelled(label: str, figures: str) -> list[str]:
    """One line, or for a label longer than its column two: the label on its own line
    (cut in its middle to 80 columns, so both ends stay), then the figures."""
    full = printable(label)
    if len(full) < _LABEL:
        return [f"{full:<{_LABEL}}{figures}"]
    return [cut_middle(full, _LABEL + len(figures)), f"{'':<{_LABEL}}{figures}"]


def _lines(r: Row) -> list[str]:
    return _labelled(r.label, f"{r.count:>6}{r.error_rate * 100:>6.1f}{r.client_errors:>4}"
                     f"{_rate(r):>6}{_n(r.p50_ms):>6}{_n(r.p95_ms):>6}{_n(r.p99_ms):>6}"
                     f"{_n(r.max_ms):>6}{_bytes(r.bytes_in):>6}{_bytes(r.bytes_out):>6}")


@dataclass(slots=True)
class _TunnelFigures:
    count: int = 0
    failed: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class TunnelTally:
    """Connections not parsed as HTTP, counted per caller → callee (bounded like the
    metrics: past `max_groups` edges the rest count under `(other)`)."""

    def __init__(self, max_groups: int = 1000) -> None:
        self._edges: dict[str, _TunnelFigures] = {}
        self._max = max_groups

    def add(self, t: Tunnel) -> None:
        key = f"{party_name(t.caller)} → {party_name(t.callee)}"
        if key not in self._edges and len(self._edges) >= self._max:
            key = "(other)"
        f = self._edges.setdefault(key, _TunnelFigures())
        f.count += 1
        f.failed += t.failed
        f.bytes_up += t.bytes_from_client
        f.bytes_down += t.bytes_from_server

    def lines(self) -> list[str]:
        """A table, busiest edge first; none when there were no tunnels."""
        if not self._edges:
            return []
        out = [f"{'tunnels (not HTTP)':<{_LABEL}}{'count':>6}{'failed':>7}{'up':>8}"
               f"{'down':>8}"]
        for key, f in sorted(self._edges.items(), key=lambda kv: (-kv[1].count, kv[0])):
            out.extend(_labelled(key, f"{f.count:>6}{f.failed:>7}{_bytes(f.bytes_up):>8}"
                                      f"{_bytes(f.bytes_down):>8}"))
        return [*out, "up: bytes the caller sent; down: bytes the server sent"]

    def json(self) -> list[dict]:
        return [{"edge": key, "count": f.count, "failed": f.failed,
                 "bytes_up": f.bytes_up, "bytes_down": f.bytes_down}
                for key, f in sorted(self._edges.items(), key=lambda kv: (-kv[1].count,
                                                                          kv[0]))]


def stats_lines(metrics: Metrics, dimensions: tuple[str, ...],
                tunnels: TunnelTally | None = None) -> list[str]:
    """A table per dimension, then the overall line; latencies in ms, throughput per s;
    then the tunnels, if any."""
    lines: list[str] = []
    for dim in dimensions:
        rows = metrics.rows(dim)
        if not rows and dim == "test":  # recorded outside a test run: no empty table
            lines.extend(["by test: none (no exchange was recorded inside a test)", ""])
            continue
        lines.append(f"{'by ' + dim:<{_LABEL}}{_HEAD}")
        for r in rows:
            lines.extend(_lines(r))
        lines.append("")
    overall = metrics.rows("overall")
    if not overall:
        lines.append("(no exchanges)")
    else:
        lines.extend(_lines(overall[0]))
        lines.append("latencies in ms; in, out: body bytes; /s: calls per second, over")
        lines.append("  at least 2 calls and 1 s (else -)")
    tail = tunnels.lines() if tunnels is not None else []
    return [*lines, "", *tail] if tail else lines


def metrics_json(metrics: Metrics, dimensions: tuple[str, ...] = ("edge", "route", "test"),
                 tunnels: TunnelTally | None = None) -> dict:
    """{dimension: [row, …], "overall": row}; keys as lists, latencies in ms; with
    `tunnels` that counted any, "tunnels": [{edge, count, failed, bytes_up,
    bytes_down}, …]."""
    out: dict[str, object] = {}
    for dim in dimensions:
        out[dim] = [_row_json(r) for r in metrics.rows(dim)]
    overall = metrics.rows("overall")
    out["overall"] = _row_json(overall[0]) if overall else None
    if tunnels is not None and tunnels.json():  # as live /metrics, which has none
        out["tunnels"] = tunnels.json()
    return out


def _row_json(r: Row) -> dict:
    d = asdict(r)
    d.pop("dimension")
    d["key"] = list(r.key)
    return d
