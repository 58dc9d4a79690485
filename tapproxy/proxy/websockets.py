"""WebSocket messages and ends, as records attached to their exchange."""

from __future__ import annotations

import time

from mitmproxy import http

from tapproxy.capture.model import WebSocketEnd, WebSocketMessage

__all__ = ["websocket_end", "websocket_message"]


def websocket_message(flow: http.HTTPFlow) -> WebSocketMessage:
    """The record of the message just relayed on this flow's WebSocket."""
    assert flow.websocket is not None
    m = flow.websocket.messages[-1]
    return WebSocketMessage(
        exchange_id=flow.id, from_client=m.from_client, is_text=m.is_text,
        content=m.content, timestamp=int(m.timestamp * 1_000_000_000),
    )


def websocket_end(flow: http.HTTPFlow) -> WebSocketEnd:
    """The record of this flow's WebSocket closing (or failing)."""
    ws = flow.websocket
    assert ws is not None
    return WebSocketEnd(
        exchange_id=flow.id, timestamp=time.time_ns(), close_code=ws.close_code,
        close_reason=ws.close_reason or "", error=flow.error.msg if flow.error else None,
    )
