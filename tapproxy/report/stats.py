"""Metrics as an 80-column table and as JSON."""

from __future__ import annotations

from dataclasses import asdict

from tapproxy.analysis.metrics import Metrics, Row

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


_HEAD = f"{'':<26}{'count':>6}{'err%':>6}{'4xx':>5}{'/s':>7}{'p50':>6}{'p95':>6}{'p99':>6}" \
        f"{'max':>6}{'in':>7}{'out':>7}"


def _line(r: Row) -> str:
    label = r.label if len(r.label) <= 25 else r.label[:24] + "…"
    return (f"{label:<26}{r.count:>6}{r.error_rate * 100:>6.1f}{r.client_errors:>5}"
            f"{_n(r.throughput_per_s):>7}{_n(r.p50_ms):>6}{_n(r.p95_ms):>6}{_n(r.p99_ms):>6}"
            f"{_n(r.max_ms):>6}{_bytes(r.bytes_in):>7}{_bytes(r.bytes_out):>7}")


def stats_lines(metrics: Metrics, dimensions: tuple[str, ...]) -> list[str]:
    """A table per dimension, then the overall line; latencies in ms, throughput per s."""
    lines: list[str] = []
    for dim in dimensions:
        rows = metrics.rows(dim)
        lines.append(f"by {dim}" + " " * (26 - 3 - len(dim)) + _HEAD[26:])
        lines.extend(_line(r) for r in rows)
        lines.append("")
    overall = metrics.rows("overall")
    lines.append(_line(overall[0]) if overall else "(no exchanges)")
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
