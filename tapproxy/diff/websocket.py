"""How two WebSocket conversations differ: each direction's messages aligned in order,
then compared by what each message is (JSON by pointer, text by line, binary by size
and SHA-256), and how each conversation was closed. Pure: no I/O.

Messages go where a gRPC call's go: the client's under `request.messages`, the
server's under `response.messages`, at `/N` for the Nth of that direction (counted
from 0, the expected's count; the actual's for a message only it has), so `--ignore
'/*/sentAt'` names a field of every message, as `/items/*/sentAt` does in a body.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from tapproxy.capture.model import Exchange, Headers, Response, WebSocketEnd, WebSocketMessage
from tapproxy.diff.bodies import BodyView
from tapproxy.diff.model import Change
from tapproxy.diff.structure import json_changes, line_changes
from tapproxy.noise import mask_text, value_kind

__all__ = ["Conversation", "learning_exchange", "message_view", "websocket_changes"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """A WebSocket's messages in the order they were relayed, and its end (None when
    none was recorded: a capture cut short, or a connection still open)."""

    messages: tuple[WebSocketMessage, ...] = ()
    end: WebSocketEnd | None = None


def message_view(m: WebSocketMessage) -> BodyView:
    """A message as a body view: JSON (an object or array), text, or binary."""
    if m.is_text:
        try:
            text = m.content.decode("utf-8")
        except UnicodeDecodeError:
            text = None  # a text frame that is not UTF-8 breaks RFC 6455: its bytes
        if text is not None:
            if text.lstrip()[:1] in ("{", "["):
                try:
                    return BodyView("json", json.loads(text))
                except ValueError:
                    pass  # looks like JSON but is not: text
            return BodyView("text", text)
    return BodyView("binary", (len(m.content), hashlib.sha256(m.content).hexdigest()))


def _whole(view: BodyView) -> object:
    """A message shown as a whole (it came, went, or changed kind)."""
    return view.describe() if view.kind == "binary" else view.value


def _pair_changes(a: BodyView, b: BodyView, part: str, at: str) -> Iterator[Change]:
    if a.kind != b.kind:
        yield Change(part, at, "changed", _whole(a), _whole(b))
    elif a.kind == "json":
        yield from json_changes(a.value, b.value, part, at)
    elif a.value == b.value:
        return
    elif a.kind == "binary":
        yield Change(part, at, "changed", a.describe(), b.describe())
    elif "\n" in a.value or "\n" in b.value:  # type: ignore[operator]
        for c in line_changes(a.value, b.value, part):  # type: ignore[arg-type]
            yield Change(part, f"{at} {c.path}", c.kind, c.expected, c.actual)
    else:  # one line each: the message as a whole, not "line 1"
        yield Change(part, at, "changed", a.value, b.value)


def _skeleton(value: object) -> object:
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(v) for v in value]
    if isinstance(value, str):
        kind = value_kind(value)
        return f"<{kind}>" if kind is not None else mask_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "<number>"
    return value


def _likeness(view: BodyView) -> str:
    """What two messages share when one is the other's counterpart: its words (a
    JSON message's keys and strings, a text's words), not its numbers, ids and times,
    which differ between runs or are what changed; a binary message is like any other."""
    if view.kind == "json":
        return "json:" + json.dumps(_skeleton(view.value), sort_keys=True, default=str)
    if view.kind == "text":
        return "text:" + mask_text(view.value)  # type: ignore[arg-type]
    return "binary"


def _direction_changes(a: list[WebSocketMessage], b: list[WebSocketMessage],
                       part: str) -> Iterator[Change]:
    if [(m.is_text, m.content) for m in a] == [(m.is_text, m.content) for m in b]:
        return
    va, vb = [message_view(m) for m in a], [message_view(m) for m in b]
    if len(va) == len(vb):  # as many messages: the nth with the nth
        for i, (u, v) in enumerate(zip(va, vb, strict=True)):
            yield from _pair_changes(u, v, part, f"/{i}")
        return
    # One came or went: align them first, so that one extra message is one added, not
    # every later one changed.
    matcher = difflib.SequenceMatcher(None, [_likeness(v) for v in va],
                                      [_likeness(v) for v in vb], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        # Alike is not equal: a pair alike (or in a stretch replaced) is compared
        common = min(i2 - i1, j2 - j1) if op in ("equal", "replace") else 0
        for k in range(common):
            yield from _pair_changes(va[i1 + k], vb[j1 + k], part, f"/{i1 + k}")
        for i in range(i1 + common, i2):
            yield Change(part, f"/{i}", "removed", _whole(va[i]), None)
        for j in range(j1 + common, j2):
            yield Change(part, f"/{j}", "added", None, _whole(vb[j]))


def _close_changes(a: WebSocketEnd | None, b: WebSocketEnd | None) -> Iterator[Change]:
    if a is None or b is None:
        return  # one end not recorded: nothing to say how it closed
    if a.close_code != b.close_code:
        yield Change("close", "", "changed", a.close_code, b.close_code)
    elif a.close_reason != b.close_reason:
        yield Change("close", "reason", "changed", a.close_reason, b.close_reason)


def websocket_changes(a: Conversation, b: Conversation) -> list[Change]:
    """Every place where conversation `b` (actual) differs from `a` (expected), noise
    included: each direction's messages, then the close code (or reason)."""
    out: list[Change] = []
    for from_client, part in ((True, "request.messages"), (False, "response.messages")):
        out.extend(_direction_changes([m for m in a.messages if m.from_client == from_client],
                                      [m for m in b.messages if m.from_client == from_client],
                                      part))
    out.extend(_close_changes(a.end, b.end))
    return out


def _as_json(messages: list[WebSocketMessage]) -> bytes:
    # Text and binary messages as null: noise is learned by pointer inside JSON ones
    # only (a time inside a text is masked anyway; see NoiseFilter.is_learned).
    views = [message_view(m) for m in messages]
    return json.dumps([v.value if v.kind == "json" else None for v in views],
                      separators=(",", ":"), default=str).encode()


def learning_exchange(x: Exchange, talk: Conversation) -> Exchange:
    """The handshake `x` as noise learning reads it: the client's messages as its
    request body and the server's as its response body, each a JSON array of the
    messages (JSON ones; others as null). Two conversations where the client said the
    same are identical requests, and a field that differs between their server
    messages is learned as noise (`/*/seq`: every message's `seq`), as in a body."""
    import dataclasses

    sent = _as_json([m for m in talk.messages if m.from_client])
    got = _as_json([m for m in talk.messages if not m.from_client])
    json_type = (("content-type", "application/json"),)
    request = dataclasses.replace(x.request, body=sent, body_size=None, body_sha256=None,
                                  headers=Headers(json_type))
    r = x.response
    response = Response(r.status if r else 101, r.reason if r else "",
                        r.http_version if r else "HTTP/1.1", r.headers if r else Headers(),
                        got)
    return dataclasses.replace(x, request=request, response=response)
