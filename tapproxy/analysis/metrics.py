"""Per-edge, per-route and per-test figures as streaming aggregates with bounded memory.

Each group keeps counts, byte totals, first start and last end, and a latency sketch:
counts in log-spaced buckets 2% wide, so a percentile is within 1% of the true value
and a group never holds more than ~1,400 buckets (1 µs to 1,000 s), however many
exchanges it sees. Sketches merge by adding counts (per-worker aggregates combine
exactly). The number of groups per dimension is capped; the rest go into `(other)`.
The same `Metrics.add` runs in `tapproxy stats` and live in the recorder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tapproxy.capture.model import Exchange
from tapproxy.noise.paths import path_template

__all__ = ["DIMENSIONS", "LatencySketch", "Metrics", "Row"]

_GAMMA = 1.02
_LOG_GAMMA = math.log(_GAMMA)
OTHER = "(other)"
DIMENSIONS = ("edge", "route", "test", "overall")


def _bucket(ns: int) -> int:
    return math.ceil(math.log(ns) / _LOG_GAMMA) if ns > 1 else 0


class LatencySketch:
    """A mergeable quantile sketch over durations in nanoseconds (1% relative error)."""

    __slots__ = ("_counts", "count", "max", "min")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.min: int | None = None
        self.max = 0

    def add(self, ns: int, bucket: int | None = None) -> None:
        b = _bucket(ns) if bucket is None else bucket
        self._counts[b] = self._counts.get(b, 0) + 1
        self.count += 1
        if self.min is None or ns < self.min:
            self.min = ns
        if ns > self.max:
            self.max = ns

    def merge(self, other: LatencySketch) -> None:
        for b, c in other._counts.items():
            self._counts[b] = self._counts.get(b, 0) + c
        self.count += other.count
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        self.max = max(self.max, other.max)

    def state(self) -> list:
        """Plain values (for JSON, or xdist's workeroutput); `from_state` restores it."""
        return [self.count, self.min, self.max, sorted(self._counts.items())]

    @classmethod
    def from_state(cls, state: list) -> LatencySketch:
        sketch = cls()
        sketch.count, sketch.min, sketch.max = state[0], state[1], state[2]
        sketch._counts = {int(b): int(c) for b, c in state[3]}
        return sketch

    @property
    def buckets(self) -> int:
        return len(self._counts)

    def quantile(self, q: float) -> int | None:
        """The q-quantile (0..1) in nanoseconds, or None when empty."""
        if not self.count or self.min is None:
            return None
        rank = max(1, math.ceil(q * self.count))  # nearest rank: p99 of 2 values is the max
        seen = 0
        for b in sorted(self._counts):
            seen += self._counts[b]
            if seen >= rank:
                mid = 2 * _GAMMA ** b / (_GAMMA + 1)  # the bucket's value of least rel. error
                return int(min(max(mid, self.min), self.max))
        return self.max


class _Figures:
    __slots__ = ("bytes_in", "bytes_out", "client_errors", "count", "errors", "first_start",
                 "last_end", "latency")

    def __init__(self) -> None:
        self.count = self.errors = self.client_errors = self.bytes_in = self.bytes_out = 0
        self.first_start: int | None = None
        self.last_end = 0
        self.latency = LatencySketch()

    def add(self, start: int, ns: int, bucket: int, failed: bool, client_error: bool,
            bytes_in: int, bytes_out: int) -> None:
        self.count += 1
        self.errors += failed
        self.client_errors += client_error
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        end = start + ns
        if end > self.last_end:
            self.last_end = end
        self.latency.add(ns, bucket)

    def state(self) -> list:
        return [self.count, self.errors, self.client_errors, self.bytes_in, self.bytes_out,
                self.first_start, self.last_end, self.latency.state()]

    @classmethod
    def from_state(cls, state: list) -> _Figures:
        f = cls()
        (f.count, f.errors, f.client_errors, f.bytes_in, f.bytes_out, f.first_start,
         f.last_end) = state[:7]
        f.latency = LatencySketch.from_state(state[7])
        return f

    def merge(self, o: _Figures) -> None:
        self.count += o.count
        self.errors += o.errors
        self.client_errors += o.client_errors
        self.bytes_in += o.bytes_in
        self.bytes_out += o.bytes_out
        if o.first_start is not None and (self.first_start is None
                                          or o.first_start < self.first_start):
            self.first_start = o.first_start
        self.last_end = max(self.last_end, o.last_end)
        self.latency.merge(o.latency)


@dataclass(frozen=True, slots=True)
class Row:
    """The figures of one group: an edge (caller → callee), a route, a test, or all."""

    dimension: str
    key: tuple[str, ...]
    count: int
    errors: int  # Exchange.failed: transport errors and 5xx
    client_errors: int  # 4xx
    error_rate: float
    throughput_per_s: float  # count over the time from first start to last end
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float
    bytes_in: int  # request bodies
    bytes_out: int  # response bodies

    @property
    def label(self) -> str:
        if not self.key:
            return "overall"
        if self.dimension == "edge":
            return " → ".join(self.key)
        return " ".join(self.key)


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


class Metrics:
    """Streaming aggregates of exchanges by edge, route and test, and overall."""

    def __init__(self, max_groups: int = 1000) -> None:
        self._max = max_groups
        self._groups: dict[str, dict[tuple[str, ...], _Figures]] = {
            "edge": {}, "route": {}, "test": {}}
        self._overall = _Figures()
        self._shapes: dict[str, str] = {}

    def _group(self, dimension: str, key: tuple[str, ...]) -> _Figures:
        groups = self._groups[dimension]
        f = groups.get(key)
        if f is None:
            if len(groups) >= self._max:
                key = (OTHER,) * len(key)
                f = groups.get(key)
            if f is None:
                f = groups[key] = _Figures()
        return f

    def _shape(self, path: str) -> str:
        shape = self._shapes.get(path)
        if shape is None:
            if len(self._shapes) >= 4096:  # bounded: ids make most paths unique
                self._shapes.clear()
            shape = self._shapes[path] = path_template(path)
        return shape

    def add(self, x: Exchange, failed: bool | None = None) -> None:
        """Count one exchange in its edge, route, test and overall (`failed`: x.failed,
        when the caller has it already)."""
        ns = x.timing.duration_ns
        bucket = _bucket(ns)
        status = x.status or 0
        if failed is None:
            failed = x.failed
        figures = (x.timing.request_start, ns, bucket, failed, 400 <= status < 500,
                   x.request.size, x.response.size if x.response is not None else 0)
        route = (x.callee.name, x.request.method, x.route or self._shape(x.request.path))
        self._overall.add(*figures)
        self._group("edge", (x.caller.name, x.callee.name)).add(*figures)
        self._group("route", route).add(*figures)
        if x.test is not None:
            self._group("test", (x.test,)).add(*figures)

    def merge(self, other: Metrics) -> None:
        """Add another aggregate's figures (e.g. another worker's) to these."""
        for dim, groups in other._groups.items():
            for key, f in groups.items():
                self._group(dim, key).merge(f)
        self._overall.merge(other._overall)

    def state(self) -> dict:
        """Plain values (for JSON, or xdist's workeroutput); `from_state` restores it."""
        return {"overall": self._overall.state(),
                **{dim: [[list(k), f.state()] for k, f in groups.items()]
                   for dim, groups in self._groups.items()}}

    @classmethod
    def from_state(cls, state: dict, max_groups: int = 1000) -> Metrics:
        m = cls(max_groups)
        m._overall = _Figures.from_state(state["overall"])
        for dim in m._groups:
            for key, f in state.get(dim, ()):
                m._group(dim, tuple(key)).merge(_Figures.from_state(f))
        return m

    def rows(self, dimension: str) -> list[Row]:
        """The figures by `dimension` (edge, route, test or overall), busiest first."""
        if dimension == "overall":
            items = [((), self._overall)] if self._overall.count else []
        else:
            items = list(self._groups[dimension].items())
        rows = [_row(dimension, k, f) for k, f in items]
        return sorted(rows, key=lambda r: (-r.count, r.key))


def _row(dimension: str, key: tuple[str, ...], f: _Figures) -> Row:
    span_ns = f.last_end - (f.first_start or f.last_end)
    lat = f.latency
    return Row(dimension, key, f.count, f.errors, f.client_errors,
               round(f.errors / f.count, 4) if f.count else 0.0,
               round(f.count / (span_ns / 1e9), 3) if span_ns > 0 else 0.0,
               _ms(lat.quantile(0.5)), _ms(lat.quantile(0.95)), _ms(lat.quantile(0.99)),
               _ms(lat.max) or 0.0, f.bytes_in, f.bytes_out)
