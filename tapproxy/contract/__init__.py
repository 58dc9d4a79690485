"""Contracts: expectations loaded from files, checked against capture records; mismatches out.

Never imports mitmproxy and never prints: `report/` renders what `check_records` yields.
"""

from tapproxy.contract.check import CheckResult, check_records
from tapproxy.contract.model import (
    MISMATCH_KINDS,
    Contract,
    ContractItem,
    Hit,
    Location,
    Mismatch,
    Verdict,
)

__all__ = [
    "MISMATCH_KINDS",
    "CheckResult",
    "Contract",
    "ContractItem",
    "Hit",
    "Location",
    "Mismatch",
    "Verdict",
    "check_records",
]
