"""WebSocket conversations gathered while a capture is read: a handshake's messages
and end come as records of their own after it (joined by its id), so each is kept
here until its end has been read and the conversation is wanted whole."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from tapproxy.capture.model import Exchange, WebSocketEnd, WebSocketMessage
from tapproxy.diff.websocket import Conversation, learning_exchange

__all__ = ["Conversations", "WebSocketPairs", "learnable"]


class Conversations:
    """Messages and ends by exchange id, as read; `take` hands one over and forgets it."""

    def __init__(self) -> None:
        self._messages: dict[str, list[WebSocketMessage]] = {}
        self._ends: dict[str, WebSocketEnd] = {}

    def add(self, record: WebSocketMessage | WebSocketEnd) -> str | None:
        """Keep `record`; the exchange id when it is an end (that conversation is over)."""
        if isinstance(record, WebSocketEnd):
            self._ends[record.exchange_id] = record
            return record.exchange_id
        self._messages.setdefault(record.exchange_id, []).append(record)
        return None

    def ended(self, exchange_id: str) -> bool:
        return exchange_id in self._ends

    def take(self, exchange_id: str) -> Conversation:
        """The conversation of `exchange_id` so far (its end None if not read), forgotten
        here."""
        return Conversation(tuple(self._messages.pop(exchange_id, ())),
                            self._ends.pop(exchange_id, None))

    def peek(self, exchange_id: str) -> Conversation:
        """The conversation of `exchange_id` so far, still kept."""
        return Conversation(tuple(self._messages.get(exchange_id, ())),
                            self._ends.get(exchange_id))


class WebSocketPairs[T]:
    """WebSocket handshakes of two captures read in step, each pair compared once both
    conversations have ended (or the captures end), each conversation learned from once
    it has ended. What is kept: the conversations of handshakes not yet compared.

    `learn(side, exchange)`: hand a conversation to that side's noise learner (as
    `learning_exchange`); `compare(a, b, talks)`: a pair's items and conversations.
    """

    def __init__(self, learn: Callable[[int, Exchange], None],
                 compare: Callable[[T, T, tuple[Conversation, Conversation]], None]) -> None:
        self._learn, self._compare = learn, compare
        self._talks = (Conversations(), Conversations())
        self._unlearned: tuple[dict[str, Exchange], dict[str, Exchange]] = ({}, {})
        # (side, id) → the pair, both sides' entries, until both conversations ended
        self._pending: dict[tuple[int, str], tuple[T, T, str, str]] = {}
        self._done: tuple[set[str], set[str]] = (set(), set())  # nothing more wanted

    def record(self, side: int, record: WebSocketMessage | WebSocketEnd) -> None:
        """A message or end read from `side`."""
        ended = self._talks[side].add(record)
        if ended is None:
            return
        x = self._unlearned[side].pop(ended, None)
        if x is not None:
            self._learn(side, learning_exchange(x, self._talks[side].peek(ended)))
        if ended in self._done[side]:
            self._done[side].discard(ended)
            self._talks[side].take(ended)
            return
        pair = self._pending.get((side, ended))
        if pair is not None and self._talks[1 - side].ended(pair[3 - side]):
            self._compared(pair)

    def handshake(self, side: int, x: Exchange) -> None:
        """A WebSocket handshake read from `side` (before it is paired)."""
        if self._talks[side].ended(x.id):
            self._learn(side, learning_exchange(x, self._talks[side].peek(x.id)))
        else:
            self._unlearned[side][x.id] = x

    def paired(self, a: T, b: T, xa: Exchange, xb: Exchange) -> bool:
        """Whether the pair (expected, actual) is taken over, to be compared later."""
        if not (xa.websocket and xb.websocket):  # a handshake against a failed one
            for side, x in ((0, xa), (1, xb)):
                if x.websocket:
                    self._forget(side, x.id)
            return False
        pair = (a, b, xa.id, xb.id)
        if self._talks[0].ended(xa.id) and self._talks[1].ended(xb.id):
            self._compared(pair)
        else:
            self._pending[(0, xa.id)] = self._pending[(1, xb.id)] = pair
        return True

    def _forget(self, side: int, exchange_id: str) -> None:
        if self._talks[side].ended(exchange_id):
            self._talks[side].take(exchange_id)
        else:
            self._done[side].add(exchange_id)

    def _compared(self, pair: tuple[T, T, str, str]) -> None:
        a, b, ia, ib = pair
        self._pending.pop((0, ia), None)
        self._pending.pop((1, ib), None)
        self._compare(a, b, (self._talks[0].take(ia), self._talks[1].take(ib)))

    def finish(self) -> None:
        """Both captures read: what never ended is learned from and compared as it is."""
        for side in (0, 1):
            for exchange_id, x in self._unlearned[side].items():
                self._learn(side, learning_exchange(x, self._talks[side].peek(exchange_id)))
            self._unlearned[side].clear()
        for pair in list(dict.fromkeys(self._pending.values())):
            self._compared(pair)


def learnable(records: Iterable[object],
              ended: Callable[[Exchange, Conversation], None] | None = None
              ) -> Iterator[Exchange]:
    """The exchanges of `records` as noise learning takes them: a WebSocket handshake
    as its `learning_exchange`, once its conversation has ended (or the records have).
    `ended(handshake, conversation)` is told of each conversation then."""
    talks = Conversations()
    handshakes: dict[str, Exchange] = {}

    def done(x: Exchange) -> Exchange:
        talk = talks.take(x.id)
        if ended is not None:
            ended(x, talk)
        return learning_exchange(x, talk)

    for r in records:
        if isinstance(r, WebSocketMessage | WebSocketEnd):
            xid = talks.add(r)
            if xid is not None and xid in handshakes:
                yield done(handshakes.pop(xid))
        elif isinstance(r, Exchange):
            if not r.websocket:
                yield r
            elif talks.ended(r.id):
                yield done(r)
            else:
                handshakes[r.id] = r
    for x in handshakes.values():  # never ended
        yield done(x)
