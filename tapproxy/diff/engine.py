"""`tapproxy diff`: two captures compared exchange by exchange, each read once.

Both captures are read in step. Each exchange is paired as soon as its counterpart has
been read (`Aligner`), compared at once, and handed to its capture's noise learner;
only exchanges still waiting are kept (the first few thousand whole, the rest as their
place in the file, read again when paired). What a pair's comparison found is set down
in a temporary file, since learned noise is known only once both captures have been
read; then each is told with that noise set aside. Memory stays flat in capture size.

A WebSocket's messages come as records of their own after its handshake: a pair of
handshakes is compared once both conversations have ended (`WebSocketPairs`), their
messages kept until then.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import msgpack

from tapproxy.capture.fastwire import ExchangeWire, exchange_of
from tapproxy.capture.format import CaptureReader, open_capture
from tapproxy.capture.model import Exchange, Record, Tunnel, WebSocketEnd, WebSocketMessage
from tapproxy.capture.protobuf import ProtoSchema
from tapproxy.diff.align import Aligner, align_key, tunnel_key
from tapproxy.diff.compare import LatencyThreshold, compare_exchanges, compare_tunnels
from tapproxy.diff.conversations import WebSocketPairs
from tapproxy.diff.lean import compare_wires, wire_key, wire_outcome, wire_route
from tapproxy.diff.learning import CaptureNoise
from tapproxy.diff.model import AlignKey, Change, PairDiff, Side, Summary, Unpaired
from tapproxy.diff.noise import NoiseFilter, carried_ids, carried_path_ids
from tapproxy.diff.websocket import Conversation, websocket_changes
from tapproxy.errors import DiffError

__all__ = ["DiffOptions", "DiffRun", "diff_captures", "side_of"]

_KEEP = 2048  # waiting exchanges kept whole; past that, only where they are in the file
_KINDS = (Tunnel, WebSocketMessage, WebSocketEnd)  # read beside exchanges, as records


@dataclass(frozen=True, slots=True)
class DiffOptions:
    ignore: tuple = ()  # PointerGlob: --ignore
    schema: ProtoSchema | None = None  # --proto-descriptor
    latency: LatencyThreshold | None = None  # --latency-threshold
    show_noise: bool = False  # keep the fields ignored as noise, to list them


def side_of(number: str, r: Exchange | Tunnel) -> Side:
    """How an exchange or tunnel is shown beside its counterpart."""
    if isinstance(r, Tunnel):
        outcome = f"{r.bytes_from_client:,}/{r.bytes_from_server:,} B"
        if r.error is not None:
            outcome = f"{r.error.kind} {outcome}"
        return Side(number, r.id, outcome, r.duration_ns)
    if r.error is not None:
        outcome = r.error.kind
    else:
        outcome = str(r.status)
        if r.grpc_status_name is not None:
            outcome += f" {r.grpc_status_name}"
    return Side(number, r.id, outcome, r.timing.duration_ns)


class _Waiting:
    """An exchange (or tunnel) waiting for its counterpart."""

    __slots__ = ("key", "number", "position", "record")

    def __init__(self, number: str, position: tuple[int, int],
                 record: ExchangeWire | Exchange | Tunnel | None, key: tuple) -> None:
        self.number, self.position, self.record, self.key = number, position, record, key


def _full(record: ExchangeWire | Exchange | Tunnel) -> Exchange | Tunnel:
    return exchange_of(record) if isinstance(record, ExchangeWire) else record


class DiffRun:
    """Iterate for the differences (pairs that differ, then removed and added); then
    `summary` has the counts. Pairs equal once noise is set aside are counted, not
    yielded (with `show_noise`, yielded too, with the fields set aside)."""

    def __init__(self, expected: CaptureReader, actual: CaptureReader, options: DiffOptions,
                 routes: Callable[[Record], Record] | None = None) -> None:
        self._readers = (expected, actual)
        self._again: list[CaptureReader | None] = [None, None]
        self._options = options
        self._routes = routes
        self._filter = NoiseFilter(options.ignore)
        self.summary = Summary()
        self.counts = [0, 0]  # exchanges and tunnels read from each capture

    def __iter__(self) -> Iterator[PairDiff | Unpaired]:
        try:
            yield from self._run()
        finally:
            for r in self._again:
                if r is not None:
                    r.close()

    def _run(self) -> Iterator[PairDiff | Unpaired]:
        with tempfile.TemporaryFile(prefix="tapproxy-diff-") as spill:
            aligner, learners = self._read(spill)
            models = [learner.model() for learner in learners]
            for reader, count in zip(self._readers, self.counts, strict=True):
                if not count:  # nothing to compare is no "equal": say so (exit 2)
                    raise DiffError(f"{reader.path}: no exchanges to compare"
                                    + (f" ({reader.problem})" if reader.truncated else ""))
            self._filter.learned(models[0].merged(models[1]))
            if self._options.show_noise:
                self.summary.learned = self._filter.listed()
            spill.seek(0)
            for entry in msgpack.Unpacker(spill, raw=False, strict_map_key=False):
                pair = self._told(entry)
                if pair.changes or self._options.show_noise:
                    yield pair
        left = sorted(aligner.leftovers(), key=lambda e: (e[0], _order(e[2].number)))
        for side, key, item in left:
            record = item.record or self._record_at(side, item.position)
            if side == 0:
                self.summary.removed += 1
            else:
                self.summary.added += 1
            yield Unpaired("removed" if side == 0 else "added", AlignKey(*key),
                           side_of(item.number, _full(record)))

    def _read(self, spill) -> tuple[Aligner[_Waiting], list[CaptureNoise]]:
        aligner: Aligner[_Waiting] = Aligner()
        learners = [CaptureNoise(lambda p: self._record_at(0, p)),
                    CaptureNoise(lambda p: self._record_at(1, p))]
        counts, routes = self.counts, self._routes
        pack = msgpack.Packer(use_bin_type=True)

        def compared(a: _Waiting, b: _Waiting,
                     talks: tuple[Conversation, Conversation] | None = None) -> None:
            entry = self._compared(a, b, talks)
            if entry is not None:
                spill.write(_packed(pack, entry))

        sockets: WebSocketPairs[_Waiting] = WebSocketPairs(
            lambda side, x: learners[side].add(x, None, x.route), compared)
        numbers = [[0, 0], [0, 0]]  # per side, exchanges and tunnels so far
        readers = self._readers
        streams = [r.lean_records(_KINDS) for r in readers]
        for side, r in _in_step(streams):
            if isinstance(r, WebSocketMessage | WebSocketEnd):
                sockets.record(side, r)
                continue
            position = readers[side].position
            counts[side] += 1
            socket = False
            if isinstance(r, ExchangeWire) and r.websocket:
                r = exchange_of(r)  # a handshake: its conversation is told of the record
            if isinstance(r, ExchangeWire):
                numbers[side][0] += 1
                number = str(numbers[side][0])
                route = r.route if routes is None else wire_route(r, routes)
                learners[side].add(r, position, route)
                key = wire_key(r, route)
            elif isinstance(r, Exchange):
                numbers[side][0] += 1
                number = str(numbers[side][0])
                if routes is not None:
                    r = routes(r)  # type: ignore[assignment]
                socket = r.websocket
                if socket:
                    sockets.handshake(side, r)  # learned from with its messages
                else:
                    learners[side].add(r, position, r.route)
                key = align_key(r).astuple()
            else:
                numbers[side][1] += 1
                number = f"t{numbers[side][1]}"
                key = tunnel_key(r).astuple()  # type: ignore[arg-type]
            # Past what is kept whole, read again when its counterpart comes (a handshake
            # is kept whole: its conversation is compared later, maybe after both are read).
            keep = socket or aligner.waiting < _KEEP
            item = _Waiting(number, position, r if keep else None, key)
            other = aligner.add(side, key, item)
            if other is None:
                continue
            if item.record is None:
                item.record = r  # in hand: compared now, not read again
            a, b = (other, item) if side == 1 else (item, other)
            ra, rb = self._record(0, a), self._record(1, b)
            if (getattr(ra, "websocket", False) or getattr(rb, "websocket", False)) \
                    and sockets.paired(a, b, _full(ra), _full(rb)):  # type: ignore[arg-type]
                continue
            compared(a, b)
        sockets.finish()
        return aligner, learners

    def _record_at(self, side: int, position: tuple[int, int]) -> ExchangeWire | Record:
        if self._again[side] is None:
            self._again[side] = open_capture(self._readers[side].path)
        return self._again[side].lean_record_at(position)  # type: ignore[union-attr]

    def _record(self, side: int, item: _Waiting) -> ExchangeWire | Exchange | Tunnel:
        if item.record is None:
            item.record = self._record_at(side, item.position)  # type: ignore[assignment]
        return item.record  # type: ignore[return-value]

    def _compared(self, a: _Waiting, b: _Waiting,
                  talks: tuple[Conversation, Conversation] | None = None) -> list | None:
        """The spill entry for a pair (with `talks`, two WebSockets' conversations), or
        None for a pair equal but for static noise."""
        ra, rb = self._record(0, a), self._record(1, b)
        key = a.key
        self.summary.pairs += 1
        schema, latency = self._options.schema, self._options.latency
        if isinstance(ra, ExchangeWire) and isinstance(rb, ExchangeWire):
            changes = compare_wires(ra, rb, schema, latency)
            carried = carried_path_ids(ra.request.path, rb.request.path)
            route: tuple = (ra.callee.name, key[3], key[4])  # route_key(ra), known
        elif isinstance(ra, Tunnel) or isinstance(rb, Tunnel):  # two (a key says which kind)
            changes, carried, route = compare_tunnels(ra, rb), None, ()  # type: ignore[arg-type]
        else:
            xa, xb = _full(ra), _full(rb)
            changes = compare_exchanges(xa, xb, schema, latency)  # type: ignore[arg-type]
            if talks is not None:
                changes += websocket_changes(*talks)
            carried = carried_ids(xa, xb)  # type: ignore[arg-type]
            route = (xa.callee.name, key[3], key[4])
        if carried is None:
            kept, noise = changes, []
        else:
            kept, noise = self._filter.static(changes, carried)
        if not kept and not (noise and self._options.show_noise):
            self.summary.noise_fields += len(noise)
            return None
        return [key, _side(a.number, ra), _side(b.number, rb), route,
                [_change(c) for c in kept], [_change(c) for c in noise]]

    def _told(self, entry: list) -> PairDiff:
        key, sa, sb, route, kept, noise = entry
        changes = [Change(*c) for c in kept]
        noisy = [Change(*c) for c in noise]
        if route:
            route = tuple(route)
            learned = [c for c in changes if self._filter.is_learned(route, c)]
            if learned:
                changes = [c for c in changes if c not in learned]
                noisy += learned
        self.summary.noise_fields += len(noisy)
        if changes:
            self.summary.differing += 1
        return PairDiff(AlignKey(*key), Side(*sa), Side(*sb), tuple(changes), len(noisy),
                        tuple(noisy) if self._options.show_noise else ())


def _order(number: str) -> tuple[int, int]:
    return (1, int(number[1:])) if number.startswith("t") else (0, int(number))


def _side(number: str, r: ExchangeWire | Exchange | Tunnel) -> tuple:
    if isinstance(r, ExchangeWire) and (shown := wire_outcome(r)) is not None:
        return (number, r.id, *shown)
    s = side_of(number, _full(r))
    return (s.number, s.id, s.outcome, s.duration_ns)


def _change(c: Change) -> tuple:
    return (c.part, c.path, c.kind, c.expected, c.actual)


def _packed(pack: msgpack.Packer, entry: list) -> bytes:
    try:
        return pack.pack(entry)
    except (OverflowError, TypeError, ValueError):
        # A JSON integer past 64 bits (Python reads any size): its text instead.
        key, sa, sb, route, kept, noise = entry
        as_text = [[*c[:3], _plain(c[3]), _plain(c[4])] for c in (*kept, *noise)]
        return pack.pack([key, sa, sb, route, as_text[:len(kept)], as_text[len(kept):]])


def _plain(value: object) -> object:
    import json

    return json.dumps(value, default=str) if value is not None else None


def _in_step(streams: list[Iterator]) -> Iterable[tuple[int, object]]:
    """Items of both streams alternately, then the rest of the longer one."""
    live = [0, 1]
    while live:
        for side in tuple(live):
            item = next(streams[side], None)
            if item is None:
                live.remove(side)
            else:
                yield side, item


def diff_captures(expected: CaptureReader, actual: CaptureReader,
                  options: DiffOptions | None = None,
                  routes: Callable[[Record], Record] | None = None) -> DiffRun:
    """Compare two captures: iterate the result for what differs, then read `summary`."""
    return DiffRun(expected, actual, options or DiffOptions(), routes)
