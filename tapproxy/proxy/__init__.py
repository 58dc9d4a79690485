"""The recording proxy: embedded mitmproxy, the recorder addon, identity and control API.

The names below load on first use: a light module of this package (the caller lookup
helper runs `python -m tapproxy.proxy.processes`) must not pull in mitmproxy.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RecordOptions", "RecordingProxy", "parse_address", "parse_reverse", "parse_service"]

_WHERE = {"RecordingProxy": "tapproxy.proxy.runner"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE.get(name, "tapproxy.proxy.options")), name)
