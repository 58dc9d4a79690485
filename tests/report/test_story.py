"""The failure story in text: 80 columns, and short for a long test."""

from __future__ import annotations

from tapproxy.analysis import first_failure
from tapproxy.report.story import story_lines
from tests.spans.build import exchange


def test_a_long_test_shows_the_path_to_the_root_and_summarises_the_rest() -> None:
    xs = [exchange(f"ok{i:03d}", "pytest", "gateway", i * 10, i * 10 + 5, path=f"/p/{i}")
          for i in range(60)]
    xs += [
        exchange("top", "pytest", "gateway-with-a-very-long-service-name", 1000, 1100,
                 status=502, path="/a/very/long/path/" + "x" * 60),
        exchange("mid", "gateway-with-a-very-long-service-name", "web", 1005, 1095,
                 status=500),
        exchange("leaf", "web", "db", 1010, 1090, status=503, response_body=b"z" * 300),
    ]
    xs += [exchange(f"late{i}", "pytest", "gateway", 2000 + i, 2000 + i + 1)
           for i in range(5)]
    lines = story_lines(first_failure(xs, outcome="failed"))
    assert max(len(line) for line in lines) <= 80
    assert lines[1] == "    … 60 more calls, none failed"
    assert lines[2].startswith(" 61 pytest → gateway-with-a-very-long-service-name")
    assert lines[2].endswith("…    502   100 ms  propagated")
    assert lines[4].endswith("503    80 ms  ◀ root")
    assert lines[5] == "    … 5 more calls, none failed"
    assert lines[6] == "root #63 web → db  GET /  503"


def test_a_call_its_caller_gave_up_on_is_told_in_the_callers_terms() -> None:
    from tapproxy.capture import ErrorInfo
    from tapproxy.report.story import root_summary

    xs = [exchange("top", "tests", "shop", 0, 600, status=504, method="POST", path="/orders"),
          exchange("pay", "shop", "payments", 10, 508, status=None, method="POST",
                   path="/charges", error=ErrorInfo("client_closed", "Client disconnected."))]
    story = first_failure(xs, outcome="failed")
    lines = story_lines(story)
    text = "\n".join(lines)
    assert "client_closed" not in text and "Client disconnected" not in text, text
    assert "  why: shop gave up after 498 ms; it made no calls" in lines, text
    assert "  error:    shop gave up after 498 ms: it closed the connection with no " \
           "response" in lines, text
    assert lines[2].endswith("gave up   498 ms  ◀ root"), lines[2]
    assert root_summary(story) == ("shop → payments POST /charges gave up: shop gave up "
                                   "after 498 ms; it made no calls")


def test_a_chain_thousands_deep_is_summarised() -> None:
    n = 1500
    xs = [exchange(f"c{i:05d}", f"s{i}", f"s{i + 1}", i, 3 * n - i,
                   status=502 if i < n - 1 else 500) for i in range(n)]
    lines = story_lines(first_failure(xs, outcome="failed"))
    assert len(lines) < 80, len(lines)
    assert max(len(line) for line in lines) <= 80
    assert any(line.endswith("◀ root") and f"s{n - 1} → s{n}" in line for line in lines)
    assert any(line.startswith("    … ") and line.endswith("more calls, all failing")
               for line in lines), lines
    assert any(line.startswith("  … ") and line.endswith("more like these")
               for line in lines), lines
