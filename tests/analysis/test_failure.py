"""The first point of failure on hand-made captures, written and read back for real.

Each scenario is one test's exchanges (ms offsets from T0, see tests/spans/build.py);
`pytest` is the test client, every other caller is a service.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapproxy.analysis import first_failure, parse_budget
from tapproxy.analysis.grouping import runs_by_test
from tapproxy.capture import ErrorInfo, TestCase, open_capture
from tests.spans.build import T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"


def story(tmp_path: Path, exchanges, outcome: str | None = "failed", **kw):
    """Write the exchanges and the test case with the real writer, read them back."""
    records = [*exchanges, TestCase(TEST, T0 - 10**9, T0 + 10**10, outcome)]
    path = write_capture(tmp_path / "run.tap", records)
    with open_capture(path) as reader:
        (run,) = list(runs_by_test(reader, only=TEST))
    return first_failure(run.exchanges, test=run.name, outcome=run.outcome, **kw)


def x(id, caller, callee, start, end, **kw):
    return exchange(id, caller, callee, start, end, test=TEST, **kw)


def roles(s) -> dict[int, str]:
    return {c.number: c.role for c in (*s.consequences, *s.others)}


def reset():
    return ErrorInfo("reset", "connection reset by peer")


def test_cascade_of_depth_four_names_the_deepest_failure(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 100, status=502, path="/checkout"),
        x("b", "gateway", "web", 5, 95, status=500),
        x("c", "web", "orders", 10, 90, status=500),
        x("d", "orders", "db", 15, 80, status=500, path="/query"),
    ])
    assert s.root.number == 4
    assert "status 500; it made no calls" in s.root.why
    assert roles(s) == {1: "propagated", 2: "propagated", 3: "propagated"}
    assert [c.reason for c in s.consequences] == ["propagated from #4"] * 3
    assert s.propagation == "propagated: gateway 502, web 500, orders 500"
    assert s.others == ()


def test_parallel_fan_out_with_one_bad_branch(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 100, status=502),
        x("b1", "gateway", "prices", 5, 40),
        x("b2", "gateway", "stock", 5, 50, status=500),
        x("b3", "gateway", "reviews", 6, 45),
        x("c", "stock", "db", 10, 45, status=None, error=reset()),
    ])
    assert [n.parent for n in s.tree.nodes] == [None, 1, 1, 1, 3]
    assert s.tree.node(5).exchange.id == "c"
    assert s.root.number == 5
    assert s.root.failure.label == "reset"
    assert roles(s) == {1: "propagated", 3: "propagated"}


def test_retries_are_numbered_attempts_of_the_root(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 200, status=502),
        x("r1", "gateway", "inventory", 5, 30, status=503, path="/stock/1"),
        x("r2", "gateway", "inventory", 40, 70, status=503, path="/stock/1"),
        x("r3", "gateway", "inventory", 80, 110, status=503, path="/stock/1"),
    ])
    assert s.root.number == 2
    assert (s.root.attempt, s.root.attempts) == (1, 3)
    assert "attempt 1 of 3; every attempt failed" in s.root.why
    assert {c.number: c.reason for c in s.consequences} == {
        1: "propagated from #2",
        3: "retry: attempt 2 of 3 of #2",
        4: "retry: attempt 3 of 3 of #2",
    }


def test_a_retry_that_recovered_leaves_no_root(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 200),
        x("r1", "gateway", "inventory", 5, 30, status=503),
        x("r2", "gateway", "inventory", 40, 70),
    ], outcome="passed")
    assert s.root is None
    assert roles(s) == {2: "handled"}


def test_a_timeout_two_hops_up_descends_to_the_slow_call(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 1000, status=504),
        x("b", "gateway", "web", 5, 1000, status=None,
          error=ErrorInfo("client_closed", "client disconnected")),
        x("c", "web", "db", 10, 3000, path="/slow"),
    ])
    assert s.root.number == 3
    assert s.root.failure.kind == "slow"
    assert s.root.why == ("still open when #2 gateway → web gave up after 995 ms; "
                          "it took 2990 ms")
    assert s.propagation == "propagated: gateway 504, web client_closed"


def test_a_timeout_descends_to_the_slowest_of_its_open_calls(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 1000, status=504),
        x("fast", "gateway", "cache", 5, 50),
        x("open1", "gateway", "search", 10, 1500),
        x("open2", "gateway", "db", 20, 3000),
    ])
    assert s.root.number == 4
    assert 2 not in s.failures and 3 not in s.failures


def test_a_reset(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 50, status=502),
        x("b", "gateway", "payments", 5, 45, status=None, error=reset()),
    ])
    assert s.root.number == 2
    assert s.root.why.startswith("transport error reset (connection reset by peer)")


def test_a_4xx_that_caused_a_500_is_the_root(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "web", 0, 100, status=500),
        x("b", "web", "inventory", 5, 50, status=400, method="POST", path="/reserve"),
    ])
    assert s.root.number == 2
    assert s.root.why == "a 400 its caller #1 pytest → web turned into 500"
    assert roles(s) == {1: "propagated"}


def test_a_red_herring_health_probe_is_not_the_root(tmp_path) -> None:
    s = story(tmp_path, [
        # The test polls until healthy: the first probe fails, the second passes.
        x("p1", "pytest", "gateway", -100, -90, status=503, path="/health"),
        x("p2", "pytest", "gateway", -80, -70, path="/health"),
        # The gateway probes inventory on its own, outside any request; that fails too.
        x("bg", "gateway", "inventory", -60, -50, status=503, path="/health"),
        x("a", "pytest", "gateway", 0, 100, status=500, path="/checkout"),
        x("b", "gateway", "payments", 10, 50, status=500, path="/pay"),
    ])
    assert s.tree.node(3).parent is None
    assert s.root.number == 5
    assert {c.number: c.reason for c in s.others} == {
        1: "handled: a later attempt, #2, passed",
        3: "caused no failure the test saw: gateway made it on its own, outside any "
           "request",
    }
    assert roles(s)[4] == "propagated"


def test_two_independent_failures_in_sequence(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 50, status=502, path="/a"),
        x("b", "gateway", "stock", 5, 45, status=500),
        x("c", "pytest", "gateway", 100, 150, status=502, path="/b"),
        x("d", "gateway", "payments", 105, 145, status=None, error=reset()),
    ])
    assert s.root.number == 2
    assert s.root.why.endswith("; it came before the independent failure #4")
    assert [c.number for c in s.consequences] == [1]
    assert {c.number: (c.role, c.reason) for c in s.others} == {
        3: ("propagated", "propagated from #4"),
        4: ("independent", "independent failure: transport error reset "
                           "(connection reset by peer); it made no calls"),
    }


def test_later_calls_that_failed_the_same_way(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 50, status=502, path="/order"),
        x("b", "gateway", "stock", 5, 45, status=500),
        x("c", "pytest", "gateway", 100, 150, status=502, path="/cart"),
        x("d", "gateway", "stock", 105, 145, status=500),
    ])
    assert s.root.number == 2
    assert {c.number: c.role for c in s.consequences} == {1: "propagated", 3: "propagated",
                                                          4: "same"}


@pytest.mark.parametrize("outcome", ["passed", None])
def test_a_clean_pass_with_a_handled_404_has_no_root(tmp_path, outcome) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 100),
        x("b", "gateway", "inventory", 5, 20, status=404),
        x("c", "pytest", "gateway", 200, 210, status=404, path="/missing"),
    ], outcome=outcome)
    assert s.root is None
    assert s.failures == {}
    assert s.consequences == s.others == ()


def test_a_failing_test_whose_only_failure_is_a_background_call_has_no_root(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 100),
        x("bg", "gateway", "inventory", 200, 210, status=503, path="/health"),
    ])
    assert s.root is None
    assert [(c.number, c.role) for c in s.others] == [(2, "unrelated")]


def test_a_404_the_test_got_in_a_failing_test_is_the_root(tmp_path) -> None:
    s = story(tmp_path, [x("a", "pytest", "gateway", 0, 100, status=404)])
    assert s.root.number == 1
    assert s.root.why == "the test got 404 and did not pass"


def test_a_budget_overrun_descends_to_the_slow_call(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 900, path="/checkout"),
        x("b", "gateway", "search", 5, 100, path="/q"),
        x("c", "gateway", "web", 110, 890),
    ], budget=parse_budget(["500ms"]))
    assert s.root.number == 3
    assert s.root.failure.kind == "budget"
    assert s.root.why == ("over its latency budget: 780 ms, budget 500 ms; it made no calls")


def test_a_route_budget_applies_to_its_route_only(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "gateway", 0, 900, path="/checkout"),
        x("c", "gateway", "web", 110, 890, path="/render"),
    ], budget=parse_budget(["gateway:/checkout=800ms"]))
    assert s.root.number == 1
    assert s.root.failure.kind == "budget"


def test_a_contract_mismatch_is_a_failure_of_its_own(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "pytest", "web", 0, 100, status=500),
        x("b", "web", "inventory", 5, 50),
    ], contract={"b": "$.count: expected integer, got string"})
    assert s.root.number == 2
    assert s.root.why.startswith("contract mismatch: $.count: expected integer")


# -- properties --------------------------------------------------------------------------

CALLERS = ["pytest", "a", "b", "c"]


@st.composite
def runs(draw):
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        start = draw(st.integers(0, 200))
        length = draw(st.integers(1, 200))
        status = draw(st.sampled_from([200, 200, 201, 404, 400, 500, 502, 504, None]))
        out.append(exchange(
            f"x{i}", draw(st.sampled_from(CALLERS)), draw(st.sampled_from(CALLERS[1:])),
            start, start + length, status=status, test=TEST,
            path=draw(st.sampled_from(["/p", "/q"])),
            error=None if status else ErrorInfo(draw(st.sampled_from(["reset", "timeout"])),
                                                "x")))
    return out, draw(st.sampled_from(["failed", "passed", None]))


@given(runs())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_root_is_a_failure_that_nothing_failing_under_it_explains(run) -> None:
    exchanges, outcome = run
    s = first_failure(exchanges, test=TEST, outcome=outcome)
    named = [c.number for c in (*s.consequences, *s.others)]
    assert len(named) == len(set(named))
    # Every failure is told once: the root, a consequence or another failure.
    assert sorted(named + ([s.root.number] if s.root else [])) == sorted(s.failures)
    if s.root is not None:
        assert s.root.number in s.failures
        for kid in s.tree.kids(s.root.number):
            assert kid not in s.failures or any(
                c.number == kid and c.role == "handled" for c in s.others)
    handled = {c.number for c in s.others if c.role == "handled"}
    if any(s.tree.by_test_client(n) for n in set(s.failures) - handled):
        assert s.root is not None  # a failure the test saw, not recovered from, has a root


@given(runs(), st.sampled_from([503, 500, None]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_failing_background_probe_never_changes_the_root(run, probe_status) -> None:
    exchanges, outcome = run
    before = first_failure(exchanges, test=TEST, outcome=outcome)
    # Service `a` probes `b` on its own, before anything else happened.
    probe = exchange("probe", "a", "b", -500, -400, status=probe_status, test=TEST,
                     path="/health",
                     error=None if probe_status else ErrorInfo("refused", "x"))
    after = first_failure([probe, *exchanges], test=TEST, outcome=outcome)
    if not {"a", "b"} <= {x.callee.name for x in exchanges}:
        return  # the probe would change who counts as a service (callers no one calls
        # are the test's own)
    root = after.tree.node(after.root.number).exchange.id if after.root else None
    assert root == (before.tree.node(before.root.number).exchange.id if before.root else None)
    assert [c.role for c in after.others if c.number == 1] in ([], ["unrelated"])
