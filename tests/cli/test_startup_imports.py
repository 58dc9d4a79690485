"""Commands that only read a capture import none of the heavy packages other commands
need (the proxy, OTLP, the HTML report, contracts, gRPC): start-up is most of a short
command's time. Checked on the modules a real run imports (`python -X importtime`),
not on durations."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tapproxy.capture import TestCase
from tests.spans.build import MS, T0, exchange, write_capture

TEST = "tests/test_shop.py::test_checkout"

# What each of these commands must not import: the packages of other commands.
ELSEWHERE = ("mitmproxy", "opentelemetry", "jinja2", "openapi_core", "grpc", "aiohttp",
             "jsonschema", "yaml", "google", "asyncio", "rich")


def _imported(*args: str, cwd) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level packages a run of `tapproxy ARGS` imported, and the run."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "tapproxy.cli", *args],
                       capture_output=True, text=True, timeout=60, cwd=cwd)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", r.stderr, re.M)
    assert "tapproxy.cli" in names, r.stderr[-2000:]  # importtime did report
    return {n.split(".")[0] for n in names}, r


@pytest.fixture
def capture(tmp_path):
    return write_capture(tmp_path / "run.tap", [
        exchange("a", "pytest", "gateway", 0, 200, status=502, path="/checkout", test=TEST),
        exchange("b", "gateway", "web", 5, 190, status=500, path="/orders/42", test=TEST),
        TestCase(TEST, T0, T0 + 300 * MS, "failed"),
    ])


def test_help_imports_no_heavy_package(tmp_path) -> None:
    imported, r = _imported("--help", cwd=tmp_path)
    assert r.returncode == 0 and "Commands" in r.stdout
    assert imported.isdisjoint(ELSEWHERE), sorted(imported & set(ELSEWHERE))


def test_why_imports_no_heavy_package(capture) -> None:
    imported, r = _imported("why", capture.name, "--test", TEST, cwd=capture.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "root #2 gateway → web  GET /orders/42  500" in r.stdout.splitlines()
    assert imported.isdisjoint(ELSEWHERE), sorted(imported & set(ELSEWHERE))


def test_stats_imports_no_heavy_package(capture) -> None:
    imported, r = _imported("stats", capture.name, "--by", "edge", cwd=capture.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(line.split()[:3] == ["gateway", "→", "web"] for line in r.stdout.splitlines())
    assert imported.isdisjoint(ELSEWHERE), sorted(imported & set(ELSEWHERE))
