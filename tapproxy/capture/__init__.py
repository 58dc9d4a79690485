"""Capture records and the `.tap` file format: the one reader API every part uses."""

from tapproxy.capture.format import CaptureReader, new_header, open_capture
from tapproxy.capture.merge import merge_captures
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
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError

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
