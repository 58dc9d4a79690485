"""Analyses over capture records: the first point of failure and per-edge metrics.

Pure functions of records; reading and printing happen in the CLI and `tapproxy.report`.
"""

# Names load on first use (PEP 562): the recorder imports `analysis.metrics` for its
# live figures, and this package's other modules (failure stories, baselines, with the
# whole capture reader) would add a tenth of a second or more to every proxy's start-up.

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Divergence": "baseline", "first_divergence": "baseline",
    "Budget": "budget", "parse_budget": "budget", "parse_duration": "budget",
    "CallNode": "calltree", "CallTree": "calltree", "build_call_tree": "calltree",
    "Consequence": "failure", "Failure": "failure", "FailureStory": "failure",
    "Root": "failure", "first_failure": "failure",
    "TestRun": "grouping", "runs_by_test": "grouping",
    "LatencySketch": "metrics", "Metrics": "metrics", "Row": "metrics",
}

__all__ = [
    "Budget",
    "CallNode",
    "CallTree",
    "Consequence",
    "Divergence",
    "Failure",
    "FailureStory",
    "LatencySketch",
    "Metrics",
    "Root",
    "Row",
    "TestRun",
    "build_call_tree",
    "first_divergence",
    "first_failure",
    "parse_budget",
    "parse_duration",
    "runs_by_test",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
