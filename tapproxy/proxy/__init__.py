"""The worker side: mitmproxy's event loop, its listeners and CA, and the recorder addons."""

# The names below load on first use (PEP 562): importing this package, or the light
# `tapproxy.proxy.embedded` the pytest plugin loads at start-up, must not pull in mitmproxy.

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RecordOptions", "RecordingProxy", "parse_address", "parse_reverse", "parse_service"]

_WHERE = {"RecordingProxy": "tapproxy.proxy.runner"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE.get(name, "tapproxy.supervisor.options")), name)
