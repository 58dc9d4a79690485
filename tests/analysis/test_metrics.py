"""Streaming metrics: the sketch's percentiles against exact ones, merging, bounded size."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.analysis.metrics import LatencySketch, Metrics
from tapproxy.capture import ErrorInfo
from tests.spans.build import exchange


def exact(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


durations = st.lists(st.integers(1_000, 10**12), min_size=1, max_size=400)


@given(durations, st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
@settings(max_examples=300, deadline=None)
def test_a_percentile_is_within_one_percent_of_the_exact_one(values, q) -> None:
    sketch = LatencySketch()
    for v in values:
        sketch.add(v)
    got, want = sketch.quantile(q), exact(values, q)
    assert abs(got - want) <= 0.01 * want + 1


@given(durations, durations)
@settings(max_examples=100, deadline=None)
def test_merged_sketches_equal_one_sketch_of_both(a, b) -> None:
    one, left, right = LatencySketch(), LatencySketch(), LatencySketch()
    for v in a + b:
        one.add(v)
    for v in a:
        left.add(v)
    for v in b:
        right.add(v)
    left.merge(right)
    assert [left.quantile(q) for q in (0.5, 0.95, 0.99)] == \
        [one.quantile(q) for q in (0.5, 0.95, 0.99)]
    assert (left.count, left.min, left.max) == (one.count, one.min, one.max)


def test_a_sketch_stays_small_however_many_values() -> None:
    sketch = LatencySketch()
    for i in range(200_000):
        sketch.add(1_000 + i * 5_000_000)  # 1 µs to 1,000 s
    assert sketch.buckets < 1_400


def test_figures_per_edge_route_test_and_overall() -> None:
    xs = [
        exchange("a", "pytest", "gateway", 0, 100, path="/orders/1", test="t1",
                 request_body=b"abc", response_body=b"hello"),
        exchange("b", "pytest", "gateway", 100, 300, path="/orders/2", test="t1",
                 status=502),
        exchange("c", "gateway", "stock", 110, 120, path="/s", test="t2", status=404),
        exchange("d", "gateway", "stock", 130, 140, path="/s", test="t2", status=None,
                 error=ErrorInfo("reset", "x")),
    ]
    m = Metrics()
    for x in xs:
        m.add(x)
    edges = {r.key: r for r in m.rows("edge")}
    e = edges[("pytest", "gateway")]
    assert (e.count, e.errors, e.client_errors, e.error_rate) == (2, 1, 0, 0.5)
    assert (e.bytes_in, e.bytes_out, e.max_ms) == (3, 5, 200.0)
    assert abs(e.p50_ms - 100.0) <= 1.0  # the sketch is within 1%
    assert e.throughput_per_s == 6.667  # 2 calls over 300 ms
    s = edges[("gateway", "stock")]
    assert (s.count, s.errors, s.client_errors) == (2, 1, 1)
    assert [r.key for r in m.rows("route")] == [("gateway", "GET", "/orders/{id}"),
                                                ("stock", "GET", "/s")]
    assert {r.key: r.count for r in m.rows("test")} == {("t1",): 2, ("t2",): 2}
    (overall,) = m.rows("overall")
    assert (overall.count, overall.errors) == (4, 2)


def test_groups_beyond_the_cap_are_counted_as_other() -> None:
    m = Metrics(max_groups=3)
    for i in range(10):
        m.add(exchange(f"x{i}", f"caller{i}", "svc", 0, 10, test=f"t{i}"))
    keys = [r.key for r in m.rows("edge")]
    assert len(keys) == 4 and ("(other)", "(other)") in keys
    assert sum(r.count for r in m.rows("edge")) == 10


def test_merging_metrics_adds_their_counts() -> None:
    a, b = Metrics(), Metrics()
    a.add(exchange("x", "p", "s", 0, 10))
    b.add(exchange("y", "p", "s", 20, 40, status=500))
    a.merge(b)
    (row,) = a.rows("edge")
    assert (row.count, row.errors, row.max_ms) == (2, 1, 20.0)


def test_state_survives_json_and_merges_like_the_original() -> None:
    import json

    a, b = Metrics(), Metrics()
    for i in range(50):
        (a if i % 2 else b).add(exchange(f"x{i}", "p", "s", i, i + 1 + i * 3, test=f"t{i % 3}",
                                         status=500 if i % 7 == 0 else 200))
    restored = Metrics.from_state(json.loads(json.dumps(a.state())))
    assert [restored.rows(d) for d in ("edge", "route", "test", "overall")] == \
        [a.rows(d) for d in ("edge", "route", "test", "overall")]
    restored.merge(b)
    a.merge(b)
    assert restored.rows("overall") == a.rows("overall")
    assert restored.rows("test") == a.rows("test")
