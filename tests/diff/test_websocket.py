"""WebSocket conversations compared (pure), and paired by the diff engine whatever the
order their records come in: messages before or after the handshake, one capture's
conversation still going when the other's has ended, a handshake against a failed
one, a capture that ends mid-conversation."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture import ErrorInfo, WebSocketEnd, WebSocketMessage, open_capture
from tapproxy.diff import DiffOptions, PairDiff, diff_captures
from tapproxy.diff.model import Change
from tapproxy.diff.websocket import Conversation, websocket_changes
from tests.diff.build import answered
from tests.spans.build import T0, exchange, write_capture


def talk(*said: tuple[str, object], code: int | None = 1000, xid: str = "") -> Conversation:
    """("c"|"s", message): a dict is sent as JSON text, str as text, bytes as binary."""
    messages = []
    for i, (who, m) in enumerate(said):
        content = json.dumps(m).encode() if isinstance(m, dict) else (
            m.encode() if isinstance(m, str) else m)
        messages.append(WebSocketMessage(xid, who == "c", not isinstance(m, bytes),
                                         content, T0 + i))
    end = None if code is None else WebSocketEnd(xid, T0 + 99, code)
    return Conversation(tuple(messages), end)


def described(data: bytes) -> str:
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}"


def test_each_direction_is_compared_by_what_its_messages_are() -> None:
    a = talk(("c", {"op": "buy", "n": 1}), ("s", {"ok": True, "price": 5}),
             ("s", "one\ntwo"), ("s", b"\x00\x01"), ("s", "plain"), ("s", "kind"))
    b = talk(("c", {"op": "buy", "n": 2}), ("s", {"ok": True, "price": 6}),
             ("s", "one\n2"), ("s", b"\x00\x02"), ("s", "other"), ("s", b"kind"), code=1011)
    assert websocket_changes(a, b) == [
        Change("request.messages", "/0/n", "changed", 1, 2),
        Change("response.messages", "/0/price", "changed", 5, 6),
        Change("response.messages", "/1 line 2", "changed", "two", "2"),
        Change("response.messages", "/2", "changed", described(b"\x00\x01"),
               described(b"\x00\x02")),
        Change("response.messages", "/3", "changed", "plain", "other"),
        Change("response.messages", "/4", "changed", "kind", described(b"kind")),
        Change("close", "", "changed", 1000, 1011),
    ]
    assert websocket_changes(a, a) == []


def test_an_extra_message_among_messages_with_volatile_values_is_one_added() -> None:
    def tick(n: int, at: str) -> dict:
        return {"type": "tick", "n": n, "at": at}

    a = talk(("s", tick(1, "2026-12-08T00:00:01Z")), ("s", tick(2, "2026-12-08T00:00:02Z")))
    b = talk(("s", tick(1, "2026-12-08T01:00:01Z")), ("s", {"type": "alert"}),
             ("s", tick(2, "2026-12-08T01:00:02Z")))
    assert websocket_changes(a, b) == [
        Change("response.messages", "/0/at", "changed", "2026-12-08T00:00:01Z",
               "2026-12-08T01:00:01Z"),
        Change("response.messages", "/1", "added", None, {"type": "alert"}),
        Change("response.messages", "/1/at", "changed", "2026-12-08T00:00:02Z",
               "2026-12-08T01:00:02Z")]
    assert websocket_changes(b, a)[1] == Change("response.messages", "/1", "removed",
                                                {"type": "alert"}, None)


def test_a_close_is_compared_only_where_both_ends_were_recorded() -> None:
    said = (("s", "hi"),)
    assert websocket_changes(talk(*said, code=4000), talk(*said, code=None)) == []
    a = talk(*said, code=4000)
    b = dataclasses.replace(a, end=dataclasses.replace(a.end, close_reason="bye"))
    assert websocket_changes(a, b) == [Change("close", "reason", "changed", "", "bye")]


messages = st.lists(st.tuples(st.sampled_from("cs"), st.one_of(
    st.text(max_size=20), st.binary(max_size=8),
    st.dictionaries(st.sampled_from("abc"), st.integers(0, 3), max_size=2))), max_size=6)


@given(messages, messages)
def test_every_message_is_accounted_for(a, b) -> None:
    """Per direction, the expected's messages are each paired or removed and the
    actual's each paired or added: counts agree, whatever the two conversations."""
    changes = websocket_changes(talk(*a), talk(*b))
    for who, part in (("c", "request.messages"), ("s", "response.messages")):
        na = sum(1 for w, _ in a if w == who)
        nb = sum(1 for w, _ in b if w == who)
        whole = [c for c in changes if c.part == part and c.path.count("/") == 1
                 and " " not in c.path]
        added = sum(c.kind == "added" for c in whole)
        removed = sum(c.kind == "removed" for c in whole)
        assert na - removed == nb - added
        assert (added, removed) == ((0, 0) if na == nb else (added, removed))
    if a == b:
        assert changes == []


# --- the engine: pairs compared once both conversations have ended --------------------

def handshake(xid: str, **kw):
    x = answered(xid, None, status=101, path="/chat", callee="chat", test=None, **kw)
    return dataclasses.replace(x, websocket=True)


def records(xid: str, conversation: Conversation) -> list:
    return [dataclasses.replace(m, exchange_id=xid) for m in conversation.messages] + (
        [dataclasses.replace(conversation.end, exchange_id=xid)]
        if conversation.end is not None else [])


def diff(tmp_path, a: list, b: list):
    pa, pb = write_capture(tmp_path / "a.tap", a), write_capture(tmp_path / "b.tap", b)
    with open_capture(pa) as ra, open_capture(pb) as rb:
        run = diff_captures(ra, rb, DiffOptions())
        items = list(run)
    return items, run.summary


PRICE = [("c", {"op": "price"}), ("s", {"price": 5})]


def test_pairs_are_compared_whatever_the_order_of_their_records(tmp_path) -> None:
    five, six = talk(*PRICE), talk(PRICE[0], ("s", {"price": 6}))
    other = talk(("s", "another conversation"))
    # a: the messages of x1 come before its handshake, x2's interleave with x1's;
    # b: x1's conversation ends after both of a's have; x2 is never closed.
    a = [*records("x1", five)[:1], handshake("x1"), handshake("x2", start=1),
         *records("x2", other)[:1], *records("x1", five)[1:], *records("x2", other)[1:]]
    b = [handshake("y1"), handshake("y2", start=1),
         *records("y2", talk(("s", "another conversation"), code=None)),
         *[answered(f"pad{i}", {"i": i}) for i in range(5)], *records("y1", six)]
    items, summary = diff(tmp_path, a, b)
    assert (summary.pairs, summary.differing, summary.added, summary.removed) == (2, 1, 5, 0)
    [pair] = [i for i in items if isinstance(i, PairDiff)]
    assert (pair.expected.id, pair.actual.id) == ("x1", "y1")
    assert pair.changes == (Change("response.messages", "/0/price", "changed", 5, 6),)


def test_a_handshake_against_a_failed_one_is_compared_as_exchanges(tmp_path) -> None:
    failed = exchange("y1", "shop", "chat", 0, 5, path="/chat", status=None,
                      error=ErrorInfo("refused", "connection refused"))
    items, _ = diff(tmp_path, [handshake("x1"), *records("x1", talk(*PRICE))], [failed])
    [pair] = items
    assert [c.part for c in pair.changes] == ["error"]
