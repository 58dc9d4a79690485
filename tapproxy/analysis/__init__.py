"""Analyses over capture records: the first point of failure and per-edge metrics.

Pure functions of records; reading and printing happen in the CLI and `tapproxy.report`.
"""

from tapproxy.analysis.baseline import Divergence, first_divergence
from tapproxy.analysis.budget import Budget, parse_budget, parse_duration
from tapproxy.analysis.calltree import CallNode, CallTree, build_call_tree
from tapproxy.analysis.failure import Consequence, Failure, FailureStory, Root, first_failure
from tapproxy.analysis.grouping import TestRun, runs_by_test
from tapproxy.analysis.metrics import LatencySketch, Metrics, Row

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
