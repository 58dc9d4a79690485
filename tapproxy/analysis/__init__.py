"""Analyses over capture records: the first point of failure and per-edge metrics.

Pure functions of records; reading and printing happen in the CLI and `tapproxy.report`.
"""

from typing import TYPE_CHECKING

from tapproxy.lazy import lazy_names

if TYPE_CHECKING:
    from tapproxy.analysis.baseline import Divergence, first_divergence
    from tapproxy.analysis.budget import Budget, parse_budget, parse_duration
    from tapproxy.analysis.calltree import CallNode, CallTree, build_call_tree
    from tapproxy.analysis.failure import Consequence, Failure, FailureStory, Root, first_failure
    from tapproxy.analysis.grouping import TestRun, runs_by_test
    from tapproxy.analysis.metrics import LatencySketch, Metrics, Row

# Each analysis is imported when first asked for: `stats` needs the metrics alone, not
# the call tree, spans and noise model that `why` builds on.
_WHERE = {
    **dict.fromkeys(("Divergence", "first_divergence"), ".baseline"),
    **dict.fromkeys(("Budget", "parse_budget", "parse_duration"), ".budget"),
    **dict.fromkeys(("CallNode", "CallTree", "build_call_tree"), ".calltree"),
    **dict.fromkeys(("Consequence", "Failure", "FailureStory", "Root", "first_failure"),
                    ".failure"),
    **dict.fromkeys(("TestRun", "runs_by_test"), ".grouping"),
    **dict.fromkeys(("LatencySketch", "Metrics", "Row"), ".metrics"),
}
__getattr__ = lazy_names(__name__, _WHERE)


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
