"""Callees known only by their address: nest what the timing settles, never guess a root.

Services nobody named are seen as callees at `127.0.0.1:PORT` and as callers under
their proxy user. Each scenario is one test's exchanges (ms offsets from T0), written
and read back for real (tests/analysis/test_failure.py's `story`).
"""

from __future__ import annotations

import dataclasses

from tapproxy.capture import Party
from tests.analysis.test_failure import roles, story
from tests.analysis.test_failure import x as named

GW, ORDERS, PAY, BANK = (f"127.0.0.1:{p}" for p in (5001, 5002, 5003, 5004))


def x(id, caller, address, start, end, **kw):
    """A call to an unnamed callee: the name is its address, as `why` prints it."""
    e = named(id, caller, address, start, end, **kw)
    return dataclasses.replace(e, callee=Party(address, "host", address))


def test_each_address_stands_for_the_one_caller_whose_calls_it_holds(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "tests", GW, 0, 100, status=502, path="/checkout"),
        x("b", "gateway", ORDERS, 5, 95, status=502, path="/orders"),
        x("c", "orders", PAY, 10, 90, status=502, path="/charges"),
        x("d", "payments", BANK, 15, 80, status=500, path="/transfers"),
    ])
    assert [(n.parent, n.inference) for n in s.tree.nodes] == [
        (None, "root"), (1, "inferred"), (2, "inferred"), (3, "inferred")]
    assert s.root.number == 4 and s.uncertain is None
    assert roles(s) == {1: "propagated", 2: "propagated", 3: "propagated"}


def test_one_address_after_another_is_settled(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "tests", GW, 0, 100, status=502, path="/checkout"),
        x("b", "gateway", "127.0.0.1:5005", 5, 8, path="/users/1"),
        x("c", "gateway", ORDERS, 9, 90, status=502, path="/orders"),
        # orders' call starts inside requests to GW and ORDERS: GW is gateway's.
        x("d", "orders", PAY, 10, 30, status=500, path="/charges"),
    ])
    assert s.tree.aliases == {GW: "gateway", ORDERS: "orders"}
    assert s.root.number == 4
    assert s.tree.node(4).parent == 3


def test_a_parallel_fan_out_is_not_guessed(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "tests", GW, 0, 100, status=502, path="/checkout"),
        x("b", "gateway", "127.0.0.1:5005", 5, 40, path="/users/1"),
        x("c", "gateway", ORDERS, 6, 90, status=502, path="/orders"),
        # users' request is open too: orders may be either address.
        x("d", "orders", PAY, 10, 30, status=500, path="/charges"),
    ])
    assert s.tree.aliases == {GW: "gateway"}
    assert s.root is None and 4 in s.uncertain.candidates
    assert set(s.uncertain.settle) == {f"--service orders={ORDERS}"}


def test_a_caller_that_may_be_two_addresses_leaves_the_root_uncertain(tmp_path) -> None:
    # orders' calls happen inside requests to both ORDERS and PAY: it may be either.
    s = story(tmp_path, [
        x("a", "tests", ORDERS, 0, 100, status=502, path="/orders"),
        x("b", "tests", PAY, 1, 100, status=200, path="/pay"),
        x("c", "orders", BANK, 10, 30, status=500, path="/transfers"),
    ])
    assert s.root is None
    assert s.tree.node(3).inference == "unplaced"
    assert s.uncertain.candidates == (1, 3)
    assert s.uncertain.settle == (f"--service orders={ORDERS}",)
    assert roles(s)[1] == roles(s)[3] == "candidate"
    assert "made no calls" not in s.uncertain.reason
    assert all("made no calls" not in c.reason for c in s.others)


def test_an_unplaced_failure_elsewhere_does_not_unsettle_a_root_it_cannot_be_under(
        tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "tests", GW, 0, 50, status=500, path="/first"),
        # A background caller with calls inside two other addresses, after the root.
        x("b", "tests", ORDERS, 60, 100, path="/o"),
        x("c", "tests", PAY, 61, 100, path="/p"),
        x("d", "worker", BANK, 70, 80, status=500, path="/late"),
    ])
    assert s.root is not None and s.root.number == 1
    assert s.uncertain is None
    assert roles(s)[4] == "unplaced"


def test_two_callers_needing_one_address_get_neither(tmp_path) -> None:
    s = story(tmp_path, [
        x("a", "tests", GW, 0, 100, status=502, path="/checkout"),
        x("b", "gateway", ORDERS, 5, 50, status=500, path="/o"),
        x("c", "audit", BANK, 60, 70, status=500, path="/a"),
    ])
    # gateway and audit both call only inside GW's request: which is GW is unknown.
    assert s.tree.aliases == {}
    assert s.root is None and set(s.uncertain.candidates) >= {2, 3}
    assert set(s.uncertain.settle) == {f"--service audit={GW}", f"--service gateway={GW}"}


def process(x, name, pid, source="process"):
    """`x` with its callee named by a local process (PID, command line)."""
    return dataclasses.replace(x, callee=Party(name, source, "127.0.0.1:5001", pid, "cmd"))


def test_a_service_whose_calls_went_around_the_proxy_leaves_the_root_uncertain(
        tmp_path) -> None:
    # node (named by its process) never calls through tapproxy: its call to orders went
    # around it. orders' failing call happened inside the test's request to node.
    s = story(tmp_path, [
        process(named("a", "tests", "-", 0, 100, status=502, path="/checkout"), "node", 7),
        named("b", "orders", "payments", 10, 30, status=500, path="/charges"),
    ])
    assert s.root is None
    assert s.uncertain.candidates == (1, 2)
    assert s.uncertain.settle == ("front orders so that calls to it are recorded "
                                  "(port=, --start)",)
    assert "node (#1) may have called orders around tapproxy" in s.uncertain.reason


def test_a_process_gets_the_name_it_calls_with_in_its_earlier_records_too(tmp_path) -> None:
    first = process(named("a", "tests", "-", 0, 10, path="/health"), "node", 7)
    later = process(named("b", "tests", "-", 20, 100, status=502, path="/checkout"),
                    "gateway", 7, source="proxy-user")
    own = dataclasses.replace(named("c", "gateway", "orders", 30, 90, status=500),
                              caller=Party("gateway", "proxy-auth", None, 7, "cmd"))
    s = story(tmp_path, [first, later, own])
    assert [n.exchange.callee.name for n in s.tree.nodes] == ["gateway", "gateway", "orders"]
    assert s.root.number == 3


def test_a_call_of_a_service_with_no_request_open_during_a_silent_services_request(
        tmp_path) -> None:
    # The test calls orders itself first (so orders is a callee here), then the gateway,
    # whose calls go around the proxy: orders' failing call comes while it has no
    # request of its own open, during the gateway's. It may be below the gateway's.
    s = story(tmp_path, [
        named("a", "tests", "orders", 0, 10, path="/health"),
        process(named("b", "tests", "-", 20, 100, status=502, path="/checkout"), "node", 7),
        named("c", "orders", "payments", 30, 50, status=500, path="/charges"),
    ])
    assert s.root is None
    assert s.tree.node(3).inference == "unplaced"
    assert s.uncertain.candidates == (2, 3)
    assert s.uncertain.settle == ("front orders so that calls to it are recorded "
                                  "(port=, --start)",)


def test_a_call_under_its_own_request_may_still_belong_to_a_silent_services(
        tmp_path) -> None:
    # The test calls orders (which answers 200) while the gateway, whose calls go around
    # the proxy, also calls orders: orders' failing call sits in both requests' time.
    s = story(tmp_path, [
        process(named("a", "tests", "-", 0, 100, status=502, path="/checkout"), "node", 7),
        named("b", "tests", "orders", 5, 90, path="/orders"),
        named("c", "orders", "payments", 30, 50, status=500, path="/charges"),
    ])
    assert s.tree.node(3).parent == 2  # where the timing puts it
    assert s.root is None
    assert s.uncertain.candidates == (1, 3)
