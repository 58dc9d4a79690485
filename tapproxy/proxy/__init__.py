"""The worker side: mitmproxy's event loop, its listeners and CA, and the recorder addons."""

# The names below load on first use (PEP 562): importing this package, or the light
# `tapproxy.proxy.embedded` the pytest plugin loads at start-up, must not pull in mitmproxy.

from __future__ import annotations

from tapproxy.lazy import lazy_names

__all__ = ["RecordOptions", "RecordingProxy", "parse_address", "parse_reverse", "parse_service"]

__getattr__ = lazy_names(__name__, {
    name: "tapproxy.proxy.runner" if name == "RecordingProxy" else "tapproxy.supervisor.options"
    for name in __all__})
