"""Comparing captures: exchanges aligned across two captures, and how each pair's
payloads differ (JSON by pointer, text by line, gRPC field by field), noise set aside.

Pure analysis over capture records: never imports mitmproxy, never prints (rendering:
`tapproxy.report.diff`).
"""

from tapproxy.diff.compare import LatencyThreshold, compare_exchanges, parse_latency_threshold
from tapproxy.diff.engine import DiffOptions, DiffRun, diff_captures
from tapproxy.diff.model import AlignKey, Change, PairDiff, Side, Summary, Unpaired

__all__ = ["AlignKey", "Change", "DiffOptions", "DiffRun", "LatencyThreshold", "PairDiff",
           "Side", "Summary", "Unpaired", "compare_exchanges", "diff_captures",
           "parse_latency_threshold"]
