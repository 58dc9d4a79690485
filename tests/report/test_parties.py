"""Parties named the same way in every output: `?ADDRESS` for an address-only caller."""

from __future__ import annotations

from tapproxy.analysis import first_failure
from tapproxy.report.parties import as_shown, party_name
from tapproxy.report.section import call_lines
from tapproxy.report.story import story_lines
from tests.spans.build import exchange


def _peer_call(**kw):
    return exchange("a", "127.0.0.1", "shop", 0, 100, caller_source="peer",
                    caller_address="127.0.0.1:40000", **kw)


def test_an_address_only_caller_reads_with_a_question_mark_once() -> None:
    x = _peer_call(status=500)
    assert party_name(x.caller) == "?127.0.0.1"
    assert party_name(as_shown(x).caller) == "?127.0.0.1"  # not ??127.0.0.1
    assert as_shown(as_shown(x)) == as_shown(x)


def test_the_section_lines_mark_an_address_only_caller() -> None:
    xs = [as_shown(_peer_call(status=502)),
          exchange("b", "shop", "payments", 10, 90, status=500)]
    lines = story_lines(first_failure(xs, outcome="failed"))
    assert any(line.startswith("  1 ?127.0.0.1 → shop") for line in lines), lines
    assert "  #1 ?127.0.0.1 → shop 502: propagated from #2" in lines, lines
    assert call_lines([_peer_call()])[0].startswith("  1 ?127.0.0.1 → shop")
