"""W3C trace context parsing (https://www.w3.org/TR/trace-context/#traceparent-header)
and the deterministic ids synthesis derives from exchange ids."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapproxy.spans.context import (
    TraceParent,
    format_traceparent,
    parse_traceparent,
    span_id_for,
    span_ids_for,
    trace_id_for,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"

FAST = settings(max_examples=150, deadline=None)


def test_parses_the_example_of_the_spec() -> None:
    assert parse_traceparent(VALID) == TraceParent(int(TRACE, 16), int(PARENT, 16), True)


@pytest.mark.parametrize(("flags", "sampled"), [("00", False), ("01", True), ("03", True),
                                                ("02", False), ("ff", True)])
def test_sampled_is_the_lowest_bit_of_the_flags(flags: str, sampled: bool) -> None:
    tp = parse_traceparent(f"00-{TRACE}-{PARENT}-{flags}")
    assert tp is not None
    assert tp.sampled is sampled


@pytest.mark.parametrize("value", [
    None,
    "",
    f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
    f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
    f"00-{TRACE[:-1]}-{PARENT}-01",  # trace id of 31 hex digits
    f"00-{TRACE}0-{PARENT}-01",  # trace id of 33
    f"00-{TRACE}-{PARENT[:-1]}-01",  # parent id of 15
    f"00-{TRACE}-{PARENT}0-01",  # parent id of 17
    f"00-{TRACE}-{PARENT}-1",  # flags of one digit
    f"00-{TRACE}-{PARENT}-001",  # flags of three
    f"0-{TRACE}-{PARENT}-01",  # version of one digit
    f"00-{TRACE}-{PARENT}-01-",  # version 00 has exactly four fields
    f"00-{TRACE}-{PARENT}-01-what-the-future-holds",
    f"00-{TRACE[:30]}zz-{PARENT}-01",  # not hex
    f"00_{TRACE}_{PARENT}_01",
    f"00-{TRACE}-{PARENT}",  # no flags
    "garbage",
])
def test_invalid_values_are_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


@pytest.mark.parametrize("value", [
    f"00-{TRACE.upper()}-{PARENT}-01",
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"00-{TRACE}-{PARENT}-0A",
])
def test_uppercase_hex_is_invalid(value: str) -> None:
    assert parse_traceparent(value) is None


@pytest.mark.parametrize("value", [
    f"01-{TRACE}-{PARENT}-01",
    f"01-{TRACE}-{PARENT}-01-some-future-field",
    f"cc-{TRACE}-{PARENT}-01-x",
])
def test_a_future_version_is_read_for_its_known_fields(value: str) -> None:
    # "If a higher version is detected, the implementation SHOULD try to parse it"; the
    # flags must be followed by the end of the value or a dash.
    assert parse_traceparent(value) == TraceParent(int(TRACE, 16), int(PARENT, 16), True)


def test_a_future_version_needs_a_dash_after_the_flags() -> None:
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01x") is None


def test_surrounding_whitespace_of_a_header_value_is_tolerated() -> None:
    assert parse_traceparent(f"  {VALID}\t") is not None


@FAST
@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1))
def test_format_then_parse_round_trips(trace_id: int, span_id: int) -> None:
    text = format_traceparent(trace_id, span_id)
    assert len(text) == 55
    assert text == text.lower()
    assert parse_traceparent(text) == TraceParent(trace_id, span_id, True)


@FAST
@given(st.text(max_size=80))
def test_parse_never_raises(value: str) -> None:
    result = parse_traceparent(value)
    assert result is None or isinstance(result, TraceParent)


@FAST
@given(st.text(min_size=1, max_size=40))
def test_ids_are_deterministic_nonzero_and_in_range(exchange_id: str) -> None:
    client, server = span_id_for(exchange_id, "client"), span_id_for(exchange_id, "server")
    assert client == span_id_for(exchange_id, "client")
    assert 0 < client < 2**64
    assert 0 < server < 2**64
    assert client != server
    trace = trace_id_for("capture-1", exchange_id)
    assert trace == trace_id_for("capture-1", exchange_id)
    assert 0 < trace < 2**128
    assert trace != trace_id_for("capture-2", exchange_id)  # a different capture
    # an id made by synthesis is one a traceparent can carry
    assert parse_traceparent(format_traceparent(trace, client)) == TraceParent(trace, client,
                                                                              True)


def test_ids_differ_between_exchanges() -> None:
    ids = {span_id_for(f"x{i}", kind) for i in range(500) for kind in ("client", "server")}
    assert len(ids) == 1000
    assert len({trace_id_for("c", f"x{i}") for i in range(500)}) == 500


def test_ids_are_the_same_in_another_process() -> None:
    # A live run and a later `tapproxy spans` must agree: no per-process hash seed.
    code = ("from tapproxy.spans.context import span_id_for, trace_id_for;"
            "print(span_id_for('x1', 'client'), trace_id_for('salt', 'x1'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert out.stdout.split() == [str(span_id_for("x1", "client")),
                                  str(trace_id_for("salt", "x1"))]


@given(st.text(st.characters(exclude_categories=("Cs",))))
def test_both_span_ids_of_an_exchange_are_each_sides_own(exchange_id: str) -> None:
    assert span_ids_for(exchange_id) == (span_id_for(exchange_id, "client"),
                                         span_id_for(exchange_id, "server"))
