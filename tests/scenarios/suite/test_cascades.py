"""Ten cascades, each a test that fails because a service deep down failed.

The outer tests (tests/scenarios/test_failure_stories.py) know each one's true root
and read what tapproxy made of it; these tests only do what a user's tests do.
"""

import itertools

REUSED = {}  # the port one test's service had, for the next test's other service


def _chain(hops, names_paths):
    """gateway → … : each service calls the next; the last one is configured apart."""
    for (name, path), (callee, callee_path) in itertools.pairwise(names_paths):
        hops.py(name, {f"POST {path}": {"calls": [hops.call(callee, callee_path)]}})


def test_depth3_cascade(hops):
    # bank never calls anyone and has no proxy setting: nothing names it but its process.
    hops.py("bank", {"POST /transfers": {"status": 500}}, proxy_env=False)
    _chain(hops, [("gateway", "/checkout"), ("orders", "/orders"),
                  ("payments", "/charges"), ("bank", "/transfers")])
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_fan_out(hops):
    hops.py("users", {"GET /users/1": {}})
    hops.py("payments", {"POST /charges": {"status": 500}})
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")]}})
    hops.py("gateway", {"POST /checkout": {"parallel": True, "calls": [
        hops.call("users", "/users/1", "GET"), hops.call("orders", "/orders")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_timeout_two_hops_up(hops):
    hops.py("payments", {"POST /charges": {"sleep": 5}})
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")],
                                        "timeout": 0.5, "fail_status": 504}})
    hops.py("gateway", {"POST /checkout": {"calls": [hops.call("orders", "/orders")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_retries(hops):
    hops.py("payments", {"POST /charges": {"status": 500}})
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")],
                                        "attempts": 3}})
    hops.py("gateway", {"POST /checkout": {"calls": [hops.call("orders", "/orders")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_4xx_became_500(hops):
    hops.py("payments", {"POST /charges": {"status": 404}})
    REUSED["port"] = hops.port("payments")
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")],
                                        "fail_status": 500}})
    hops.py("gateway", {"POST /checkout": {"calls": [hops.call("orders", "/orders")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_reset(hops):
    # stock listens on the port payments had in the previous test: another process.
    hops.port("stock", REUSED.get("port"))
    hops.py("stock", {"POST /reserve": {"reset": True}})
    _chain(hops, [("gateway", "/checkout"), ("orders", "/orders"), ("stock", "/reserve")])
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_two_failures(hops):
    hops.py("profiles", {"GET /profiles/1": {"status": 500}})
    hops.py("users", {"GET /users/1": {"calls": [hops.call("profiles", "/profiles/1", "GET")]}})
    hops.py("payments", {"POST /charges": {"status": 500}})
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")]}})
    hops.py("gateway", {"POST /checkout": {"calls": [
        hops.call("users", "/users/1", "GET"), hops.call("orders", "/orders")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_red_herring(hops):
    # The health check's audit call fails, and the gateway shrugs it off: not the cause.
    hops.py("audit", {"POST /events": {"status": 500}})
    hops.py("payments", {"POST /charges": {"status": 500}})
    hops.py("orders", {"POST /orders": {"calls": [hops.call("payments", "/charges")]}})
    hops.py("gateway", {
        "GET /health": {"calls": [hops.call("audit", "/events")], "ignore": True},
        "POST /checkout": {"calls": [hops.call("orders", "/orders")]}})
    assert hops.send("GET", "gateway", "/health").status_code == 200
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_node_in_the_chain(hops):
    hops.py("payments", {"POST /charges": {"status": 500}})
    hops.node("inventory", hops.url("payments", "/charges"))
    hops.py("gateway", {"POST /checkout": {"calls": [hops.call("inventory", "/reserve")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200


def test_go_in_the_chain(hops):
    hops.py("carrier", {"POST /labels": {"status": 500}})
    hops.go("shipping", hops.url("carrier", "/labels"))
    hops.py("gateway", {"POST /checkout": {"calls": [hops.call("shipping", "/ship")]}})
    assert hops.send("POST", "gateway", "/checkout").status_code == 200
