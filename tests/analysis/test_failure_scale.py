"""The failure story of a test with thousands of failing attempts of one call stays
linear: counted in lines executed (sys.settrace), not seconds. (8,000 failing retries
took 20 s: a membership test in a tuple and a scan of every attempt per failure.)"""

from __future__ import annotations

import sys

import pytest

from tapproxy.analysis.failure import first_failure
from tests.spans.build import exchange


def lines_run(fn) -> int:
    """How many lines (loop turns included) running fn() executes."""
    count = [0]

    def trace(frame, event, arg):
        if event == "line":
            count[0] += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count[0]


def attempts(n: int, last_passes: bool):
    # The test called gw n times; every attempt failed (but the last, if last_passes).
    return [exchange(f"r{i:06d}", "tests", "gw", 2 * i, 2 * i + 1,
                     status=200 if last_passes and i == n - 1 else 503) for i in range(n)]


def test_every_attempt_failing_is_a_root_and_its_retries() -> None:
    story = first_failure(attempts(400, False), test="t", outcome="failed")
    assert story.root.number == 1 and (story.root.attempt, story.root.attempts) == (1, 400)
    assert [(c.number, c.role) for c in story.consequences] == [
        (n, "retry") for n in range(2, 401)]
    assert story.others == ()


@pytest.mark.parametrize("last_passes", [False, True])
def test_many_failing_attempts_cost_work_in_proportion(last_passes) -> None:
    small = lines_run(lambda: first_failure(attempts(250, last_passes), test="t",
                                            outcome="failed"))
    large = lines_run(lambda: first_failure(attempts(1000, last_passes), test="t",
                                            outcome="failed"))
    assert large <= 4 * small * 1.25  # four times the calls: about four times the work
