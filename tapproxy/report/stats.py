"""Metrics as an 80-column table and as JSON."""

from __future__ import annotations

from dataclasses import asdict

from tapproxy.analysis.metrics import Metrics, Row
from tapproxy.report.printable import printable

__all__ = ["metrics_json", "stats_lines"]


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


def _lines(r: Row) -> list[str]:
    """One line, or two when the label is longer than its column (it is never cut)."""
    full = printable(r.label)
    label = full if len(full) < _LABEL else ""
    figures = (f"{label:<{_LABEL}}{r.count:>6}{r.error_rate * 100:>6.1f}{r.client_errors:>4}"
            f"{_n(r.throughput_per_s):>6}{_n(r.p50_ms):>6}{_n(r.p95_ms):>6}{_n(r.p99_ms):>6}"
            f"{_n(r.max_ms):>6}{_bytes(r.bytes_in):>6}{_bytes(r.bytes_out):>6}")
    return [figures] if label else [full, figures]


def stats_lines(metrics: Metrics, dimensions: tuple[str, ...]) -> list[str]:
    """A table per dimension, then the overall line; latencies in ms, throughput per s."""
    lines: list[str] = []
    for dim in dimensions:
        rows = metrics.rows(dim)
        lines.append(f"{'by ' + dim:<{_LABEL}}{_HEAD}")
        for r in rows:
            lines.extend(_lines(r))
        lines.append("")
    overall = metrics.rows("overall")
    if not overall:
        return [*lines, "(no exchanges)"]
    lines.extend(_lines(overall[0]))
    lines.append("latencies in ms; /s: calls per second; in, out: body bytes")
    return lines


def metrics_json(metrics: Metrics, dimensions: tuple[str, ...] = ("edge", "route", "test")
                 ) -> dict:
    """{dimension: [row, …], "overall": row}; keys as lists, latencies in ms."""
    out: dict[str, object] = {}
    for dim in dimensions:
        out[dim] = [_row_json(r) for r in metrics.rows(dim)]
    overall = metrics.rows("overall")
    out["overall"] = _row_json(overall[0]) if overall else None
    return out


def _row_json(r: Row) -> dict:
    d = asdict(r)
    d.pop("dimension")
    d["key"] = list(r.key)
    return d
