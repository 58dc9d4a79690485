"""Learning a capture's noise while the diff reads it, not in a pass of its own.

The diff reads each exchange once, mostly as its wire form (`diff.lean`). Noise is
learned from repeated identical requests whose answers differ: an answer is hashed
from its raw bytes, and only when a repeat's hashes differ from the first answer's are
the two parsed (the first read again by its place in the file: nothing is kept whole).
A capture whose requests never repeat, or repeat with the same answer, has no body
parsed for learning at all.
"""

from __future__ import annotations

from collections.abc import Callable

from tapproxy.capture.encoding import parse_json
from tapproxy.capture.fastwire import ExchangeWire, response_of
from tapproxy.capture.model import Exchange, Response, Tunnel
from tapproxy.diff.lean import json_identity, wire_request_key, wire_response
from tapproxy.noise import (
    MAX_LEAVES,
    NoiseLearner,
    NoiseModel,
    RouteKey,
    body_leaves,
    path_template,
)
from tapproxy.noise.model import leaf_hash_dict
from tapproxy.noise.pointers import leaf_hashes, leaves

__all__ = ["CaptureNoise"]

# Per capture, how many response fields the learner keeps fingerprints of (its oldest
# requests forgotten past that): the diff's memory stays flat in capture size (the
# model's default, 200,000, grew a 100,000-exchange diff by ~80 MiB). A request
# repeated within the last ~6,000 exchanges or so is still compared with its previous.
_FINGERPRINTS = 50_000


class _Answer:
    """An answer in hand (noise.Answer), built into a Response only where the raw
    fields do not settle what the learner asks."""

    __slots__ = ("route", "wire")

    def __init__(self, wire: ExchangeWire, route: str | None) -> None:
        self.wire, self.route = wire, route

    def response(self) -> Response:
        return wire_response(self.wire.response)

    def body_leaves(self) -> list[tuple[str, object]]:
        r = self.wire.response
        if r.body_size is None and json_identity(r.headers):  # type: ignore[union-attr]
            # As body_leaves would take it: not encoded, kept whole, declared JSON.
            try:
                return leaves(parse_json(r.body))[:MAX_LEAVES]  # type: ignore[union-attr]
            except ValueError:
                return [("", r.body)]  # type: ignore[union-attr]
        return body_leaves(self.response())

    def body_hashes(self) -> dict[str, int]:
        r = self.wire.response
        if r.body_size is None and json_identity(r.headers):  # type: ignore[union-attr]
            try:  # as body_leaves, without the (pointer, value) list
                return leaf_hashes(parse_json(r.body), MAX_LEAVES)  # type: ignore[union-attr]
            except ValueError:
                pass
        return leaf_hash_dict(self.body_leaves())

    def route_key(self) -> RouteKey:
        q = self.wire.request
        return self.wire.callee.name, q.method, self.route or path_template(q.path)


class CaptureNoise:
    """One capture's noise: `add` each exchange as read, `model()` at the end.
    `read_again(position)` gives the record at a position `add` was given."""

    def __init__(self, read_again: Callable[[tuple[int, int]], object]) -> None:
        self._read_again = read_again
        self._learner = NoiseLearner(_FINGERPRINTS, self._response_at)

    def _response_at(self, position: object) -> Response:
        record = self._read_again(position)  # type: ignore[arg-type]
        if isinstance(record, Exchange):
            return record.response  # type: ignore[return-value]
        return response_of(record.response)  # type: ignore[attr-defined]

    def add(self, record: ExchangeWire | Exchange | Tunnel, position: tuple[int, int],
            route: str | None) -> None:
        """An exchange (`route`: its route template once --route set it), or a tunnel
        (nothing learned)."""
        if isinstance(record, ExchangeWire):
            r = record.response
            if r is None or record.error is not None:
                return
            sha = r.body_sha256 if r.body_size is not None else None
            self._learner.add_answer((wire_request_key(record), r.status),
                                     hash(sha or r.body), hash(r.headers), position,
                                     _Answer(record, route))
        elif isinstance(record, Exchange) and record.response is not None \
                and record.error is None:
            self._learner.add(record)

    def model(self) -> NoiseModel:
        return self._learner.model()
