"""The unnamed-callee hint over a long test stays linear: each of a caller's calls was
checked against every request to the address (5,000 calls: 6.6 s; 50,000: ~11 min).
The hint now reads the call tree, whose stand-in inference must stay linear as well.
Counted in reads of the requests' end times, not in seconds."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.analysis.calltree import _Spans, build_call_tree
from tapproxy.capture import Party, Timing
from tapproxy.report.hints import unnamed_callee_hints
from tests.spans.build import MS, T0, exchange

A = "127.0.0.1:5002"
READS = [0]


@dataclasses.dataclass(frozen=True)
class CountedTiming(Timing):
    """A Timing that counts how often the hint asks when the exchange ended."""

    @property
    def end(self) -> int:
        READS[0] += 1
        return Timing.end.fget(self)  # type: ignore[attr-defined]


def _reads(calls: int) -> int:
    """End-time reads of the requests to A for the hint over one test of `calls` calls."""
    xs = []
    for i in range(calls):
        served = exchange(f"t{i}", "tests", A, 10 * i, 10 * i + 8)
        t = served.timing
        xs.append(dataclasses.replace(
            served, callee=Party(A, "host", A),
            timing=CountedTiming(t.request_start, t.request_end, t.response_start,
                                 t.response_end)))
        xs.append(exchange(f"o{i}", "orders", "db", 10 * i + 2, 10 * i + 5))
    READS[0] = 0
    assert unnamed_callee_hints(build_call_tree(xs)) == [
        f"{A} may be orders: orders's calls happen only inside requests to it",
        f"  if so, name it: --service orders={A}"]
    return READS[0]


def test_the_hint_reads_each_request_a_bounded_number_of_times() -> None:
    # The call tree reads each request's end a few times (sorting, parents, spans):
    # a fixed number per request, so twice the calls is twice the reads. Quadratic was
    # about calls² / 2 (4.5 million here).
    small, large = _reads(3000), _reads(6000)
    assert small <= 10 * 3000
    assert large <= 2.2 * small


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), max_size=12),
       st.integers(-5, 80))
def test_a_moment_is_inside_exactly_when_some_request_holds_it(requests, at) -> None:
    served = [exchange(f"r{i}", "tests", A, s, s + d) for i, (s, d) in enumerate(requests)]
    at = T0 + at * MS  # build.exchange counts milliseconds from T0
    naive = any(x.timing.request_start <= at <= x.timing.end for x in served)
    assert _Spans(served).cover(at) == naive
