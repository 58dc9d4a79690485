"""Which proxy user an unnamed callee address may be: said only when the timing points
at exactly one caller, and never for a caller already seen at a named address."""

from __future__ import annotations

import dataclasses

from tapproxy.analysis.calltree import build_call_tree
from tapproxy.capture import Party
from tapproxy.report.hints import unnamed_callee_hints
from tests.spans.build import exchange

A = "127.0.0.1:5002"


def to_unnamed(x):
    return dataclasses.replace(x, callee=Party(A, "host", A))


def test_the_one_caller_calling_only_inside_requests_to_the_address_is_hinted():
    xs = [to_unnamed(exchange("1", "tests", A, 0, 100)),
          exchange("2", "orders", "payments", 10, 20),
          exchange("3", "orders", "stock", 30, 40)]
    assert unnamed_callee_hints(build_call_tree(xs)) == [
        f"{A} may be orders: orders's calls happen only inside requests to it",
        f"  if so, name it: --service orders={A}"]


def test_no_hint_when_two_callers_fit_or_the_caller_is_named_or_calls_outside():
    served = to_unnamed(exchange("1", "tests", A, 0, 100))
    two = [served, exchange("2", "orders", "payments", 10, 20),
           exchange("3", "billing", "payments", 30, 40)]
    assert unnamed_callee_hints(build_call_tree(two)) == []
    named = [served, exchange("2", "orders", "payments", 10, 20),
             exchange("3", "tests", "orders", 200, 300)]
    assert unnamed_callee_hints(build_call_tree(named)) == []
    outside = [served, exchange("2", "orders", "payments", 10, 20),
               exchange("3", "orders", "payments", 150, 160)]
    assert unnamed_callee_hints(build_call_tree(outside)) == []
