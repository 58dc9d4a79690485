"""Capture records and the `.tap` file format: the one reader API every part uses."""

from typing import TYPE_CHECKING

from tapproxy.capture.format import CaptureReader, new_header, open_capture
from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    GrpcMessage,
    Headers,
    Party,
    Record,
    Request,
    ResourceSample,
    Response,
    ServiceLog,
    SessionHeader,
    SpanBatch,
    TestCase,
    Timing,
    Tunnel,
    WebSocketEnd,
    WebSocketMessage,
)
from tapproxy.errors import CaptureError
from tapproxy.lazy import lazy_names

if TYPE_CHECKING:
    from tapproxy.capture.merge import merge_captures
    from tapproxy.capture.writer import CaptureWriter

# Writing is imported when first asked for: it brings asyncio, msgpack's packer and isal,
# which the commands that only read a capture (why, stats, show) would import for nothing.
_WRITING = {"CaptureWriter": "tapproxy.capture.writer",
            "merge_captures": "tapproxy.capture.merge"}


__getattr__ = lazy_names(__name__, _WRITING)


__all__ = [
    "CaptureError",
    "CaptureReader",
    "CaptureWriter",
    "ErrorInfo",
    "Exchange",
    "GrpcMessage",
    "Headers",
    "Party",
    "Record",
    "Request",
    "ResourceSample",
    "Response",
    "ServiceLog",
    "SessionHeader",
    "SpanBatch",
    "TestCase",
    "Timing",
    "Tunnel",
    "WebSocketEnd",
    "WebSocketMessage",
    "merge_captures",
    "new_header",
    "open_capture",
]
