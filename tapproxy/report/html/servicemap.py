"""The service map drawn from the wire: every party seen (instrumented or not), placed in
columns by how far down the calls it sits, and the edges with their figures.

Count, error rate and percentiles come from `analysis.metrics` (the figures `tapproxy
stats` prints); the latency histogram per edge is counted here, in log-spaced bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from tapproxy.analysis.metrics import Metrics

__all__ = ["edge_figures", "histogram", "layout"]

_BINS_PER_DECADE = 4  # 1, 1.8, 3.2, 5.6 ms, …: fine enough to see two modes apart


def histogram(durations_ms: Sequence[float]) -> list[list[float]]:
    """[[low ms, high ms, count], …] over log-spaced bins covering `durations_ms`."""
    if not durations_ms:
        return []

    def bin_of(v: float) -> int:
        return math.floor(math.log10(max(v, 0.001)) * _BINS_PER_DECADE)

    counts: dict[int, int] = {}
    for v in durations_ms:
        b = bin_of(v)
        counts[b] = counts.get(b, 0) + 1
    low, high = min(counts), max(counts)
    return [[round(10 ** (b / _BINS_PER_DECADE), 3), round(10 ** ((b + 1) / _BINS_PER_DECADE), 3),
             counts.get(b, 0)] for b in range(low, high + 1)]


def edge_figures(metrics: Metrics, index: dict[str, int],
                 durations: dict[tuple[str, str], list[float]] | None = None) -> list[dict]:
    """Each edge's figures: caller and callee as indexes into the services, count, errors,
    error rate, p50, p95 (ms) and, given `durations`, the latency histogram."""
    out = []
    for row in metrics.rows("edge"):
        caller, callee = row.key
        if caller not in index or callee not in index:
            continue  # `(other)`: past the group cap, no place on the map
        edge = {"a": index[caller], "b": index[callee], "count": row.count,
                "errors": row.errors, "rate": row.error_rate, "p50": row.p50_ms,
                "p95": row.p95_ms}
        if durations is not None:
            edge["hist"] = histogram(durations.get((caller, callee), ()))
        out.append(edge)
    return out


def layout(services: Sequence[str], edges: Iterable[tuple[int, int]],
           first: str | None = None) -> list[list[float]]:
    """[x, y] of each service: columns by the longest chain of calls reaching it (the
    test client, `first`, leftmost), rows by name within a column."""
    edges = [(a, b) for a, b in edges if a != b]
    level = [0] * len(services)
    # Longest path from the callers that nobody calls, cycles cut after len(services)
    # rounds (a service that calls back up stays where the first pass put it).
    for _ in range(len(services)):
        changed = False
        for a, b in edges:
            if level[b] < level[a] + 1 and level[a] + 1 < len(services):
                level[b] = level[a] + 1
                changed = True
        if not changed:
            break
    if first is not None and first in services:
        level[services.index(first)] = 0
    columns: dict[int, list[int]] = {}
    for i in sorted(range(len(services)), key=lambda i: services[i]):
        columns.setdefault(level[i], []).append(i)
    pos = [[0.0, 0.0] for _ in services]
    for col, members in enumerate(sorted(columns)):
        for row, i in enumerate(columns[members]):
            pos[i] = [float(col), float(row)]
    return pos
