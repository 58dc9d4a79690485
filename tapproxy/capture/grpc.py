"""gRPC message framing: each message is a 1-byte compressed flag, a 4-byte big-endian
length, then that many bytes (gRPC over HTTP/2, "Length-Prefixed-Message").

`MessageClock` watches a body stream go by and notes when each message completed, without
copying it (mitmproxy keeps the body); `split_messages` cuts a stored body into messages
again, with those times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from tapproxy.capture.model import GrpcMessage

__all__ = ["Frame", "MessageClock", "index_messages", "iter_messages", "merge_messages",
           "messages_from_index", "split_messages"]

_PREFIX = 5

type Frame = tuple[bool, int, int]
"""(compressed, length, timestamp in epoch ns) of one message, in body order."""


class MessageClock:
    """A mitmproxy `stream` callable that passes every chunk on unchanged, noting message ends.

    Called on the event loop for each chunk: it only counts bytes (no copies, no decoding).
    """

    __slots__ = ("_head", "_left", "frames")

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._head = bytearray()  # the prefix of the message being read, until complete
        self._left = 0  # payload bytes of the current message not yet seen

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:
            self._feed(chunk, time.time_ns())
        return chunk

    def _feed(self, chunk: bytes, now: int) -> None:
        i, n = 0, len(chunk)
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                self._left -= take
                i += take
                if not self._left:
                    self._complete(now)
                continue
            take = min(_PREFIX - len(self._head), n - i)
            self._head += chunk[i:i + take]
            i += take
            if len(self._head) == _PREFIX:
                self._left = int.from_bytes(self._head[1:5])
                if not self._left:
                    self._complete(now)

    def _complete(self, now: int) -> None:
        self.frames.append((bool(self._head[0]), int.from_bytes(self._head[1:5]), now))
        self._head.clear()


def iter_messages(body: bytes) -> Iterator[tuple[bool, bytes]]:
    """(compressed, data) of each whole message in a body; a cut-off tail is left out."""
    i = 0
    while i + _PREFIX <= len(body):
        length = int.from_bytes(body[i + 1:i + 5])
        end = i + _PREFIX + length
        if end > len(body):
            return
        yield bool(body[i]), body[i + _PREFIX:end]
        i = end


def split_messages(body: bytes, frames: Sequence[Frame] | None, from_client: bool,
                   default_time: int) -> list[GrpcMessage]:
    """The messages of one body: with their recorded times where `frames` has them (and
    agrees with the body), else all at `default_time`."""
    out = []
    for n, (compressed, data) in enumerate(iter_messages(body)):
        t = default_time
        if frames is not None and n < len(frames) and frames[n][1] == len(data):
            t = frames[n][2]
        out.append(GrpcMessage(from_client, compressed, t, data))
    return out


def merge_messages(*directions: list[GrpcMessage]) -> tuple[GrpcMessage, ...]:
    """Both directions in the order they arrived (stable: a tie keeps the client first)."""
    return tuple(sorted((m for d in directions for m in d), key=lambda m: m.timestamp))


def index_messages(messages: tuple[GrpcMessage, ...]) -> list[dict]:
    """Where each message ends and when: the payloads are already in the bodies."""
    return [{"from_client": m.from_client, "compressed": m.compressed,
             "timestamp": m.timestamp, "length": len(m.data)} for m in messages]


def messages_from_index(raw: list, request_body: bytes, response_body: bytes | None
                        ) -> tuple[GrpcMessage, ...]:
    """The messages an `index_messages` list describes, cut from the two bodies."""
    offsets = {True: 0, False: 0}
    out = []
    for d in raw:
        from_client = bool(d["from_client"])
        body = request_body if from_client else response_body or b""
        start = offsets[from_client] + 5  # past the 5-byte length prefix
        end = start + d["length"]
        if end > len(body):
            break  # the body was changed (redaction) or cut: stop where they disagree
        out.append(GrpcMessage(from_client, bool(d.get("compressed", False)),
                               d["timestamp"], body[start:end]))
        offsets[from_client] = end
    return tuple(out)
