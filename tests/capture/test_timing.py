"""When an exchange was over: the latest phase it reached, in a fixed order of trust."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture import Timing

_MAYBE = st.none() | st.integers(0, 10**12)


@given(st.integers(0, 10**12), _MAYBE, _MAYBE, _MAYBE, _MAYBE)
def test_the_end_is_the_first_phase_stamped_of_response_end_error_response_start_request_end(
        start, request_end, response_start, response_end, error_at) -> None:
    t = Timing(start, request_end, response_start, response_end, error_at=error_at)
    stamped = [v for v in (response_end, error_at, response_start, request_end)
               if v is not None]
    assert t.end == (stamped[0] if stamped else start)
    assert t.duration_ns == max(0, t.end - start)
