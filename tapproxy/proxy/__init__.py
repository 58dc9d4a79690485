"""The recording proxy: embedded mitmproxy, the recorder addon, identity and control API."""

from tapproxy.proxy.options import RecordOptions, parse_address, parse_reverse, parse_service
from tapproxy.proxy.runner import RecordingProxy

__all__ = ["RecordOptions", "RecordingProxy", "parse_address", "parse_reverse", "parse_service"]
