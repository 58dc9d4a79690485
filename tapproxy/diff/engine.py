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

from tapproxy.capture.format import CaptureReader, open_capture
from tapproxy.capture.model import Exchange, Record, Tunnel, WebSocketEnd, WebSocketMessage
from tapproxy.capture.protobuf import ProtoSchema
from tapproxy.diff.align import Aligner, align_key, tunnel_key
from tapproxy.diff.compare import LatencyThreshold, compare_exchanges, compare_tunnels
from tapproxy.diff.conversations import WebSocketPairs
from tapproxy.diff.learning import NoiseLearner
from tapproxy.diff.model import AlignKey, Change, PairDiff, Side, Summary, Unpaired
from tapproxy.diff.noise import NoiseFilter, carried_ids
from tapproxy.diff.websocket import Conversation, websocket_changes
from tapproxy.errors import DiffError

__all__ = ["DiffOptions", "DiffRun", "diff_captures", "side_of"]

_KEEP = 2048  # waiting exchanges kept whole; past that, only where they are in the file


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
                 record: Exchange | Tunnel | None) -> None:
        self.number, self.position, self.record = number, position, record
        self.key: AlignKey | None = None


type _Read = _Waiting | WebSocketMessage | WebSocketEnd


def _numbered(reader: CaptureReader,
              routes: Callable[[Record], Record] | None) -> Iterator[_Read]:
    n = t = 0
    for r in reader:
        if isinstance(r, Exchange):
            n += 1
            yield _Waiting(str(n), reader.position, routes(r) if routes else r)
        elif isinstance(r, Tunnel):
            t += 1
            yield _Waiting(f"t{t}", reader.position, r)
        elif isinstance(r, WebSocketMessage | WebSocketEnd):
            yield r


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
            yield Unpaired("removed" if side == 0 else "added", key,
                           side_of(item.number, record))

    def _read(self, spill) -> tuple[Aligner[_Waiting], list[NoiseLearner]]:
        aligner: Aligner[_Waiting] = Aligner()
        learners = [NoiseLearner(), NoiseLearner()]
        streams = [_numbered(r, self._routes) for r in self._readers]
        pack = msgpack.Packer(use_bin_type=True)

        def compared(a: _Waiting, b: _Waiting,
                     talks: tuple[Conversation, Conversation] | None = None) -> None:
            entry = self._compared(a, b, talks)
            if entry is not None:
                spill.write(_packed(pack, entry))

        sockets: WebSocketPairs[_Waiting] = WebSocketPairs(
            lambda side, x: learners[side].add(x), compared)
        try:
            for side, item in _in_step(streams):
                if not isinstance(item, _Waiting):
                    sockets.record(side, item)
                    continue
                r = item.record
                self.counts[side] += 1
                socket = isinstance(r, Exchange) and r.websocket
                if isinstance(r, Exchange):
                    if socket:
                        sockets.handshake(side, r)  # learned from with its messages
                    else:
                        learners[side].add(r)
                    key = align_key(r)
                else:
                    key = tunnel_key(r)  # type: ignore[arg-type]
                item.key = key
                if aligner.waiting >= _KEEP and not socket:
                    # Read again when its counterpart comes (a handshake is kept whole:
                    # its conversation is compared later, maybe after both are read).
                    item.record = None
                other = aligner.add(side, key, item)
                if other is None:
                    continue
                a, b = (other, item) if side == 1 else (item, other)
                ra, rb = self._record(0, a), self._record(1, b)
                if isinstance(ra, Exchange) and isinstance(rb, Exchange) \
                        and sockets.paired(a, b, ra, rb):
                    continue
                compared(a, b)
            sockets.finish()
        except BaseException:
            for learner in learners:
                learner.close()
            raise
        return aligner, learners

    def _record_at(self, side: int, position: tuple[int, int]) -> Exchange | Tunnel:
        if self._again[side] is None:
            self._again[side] = open_capture(self._readers[side].path)
        record = self._again[side].record_at(position)  # type: ignore[union-attr]
        if self._routes is not None and isinstance(record, Exchange):
            record = self._routes(record)
        return record  # type: ignore[return-value]

    def _record(self, side: int, item: _Waiting) -> Exchange | Tunnel:
        if item.record is None:
            item.record = self._record_at(side, item.position)
        return item.record

    def _compared(self, a: _Waiting, b: _Waiting,
                  talks: tuple[Conversation, Conversation] | None = None) -> list | None:
        """The spill entry for a pair (with `talks`, two WebSockets' conversations), or
        None for a pair equal but for static noise."""
        ra, rb = self._record(0, a), self._record(1, b)
        self.summary.pairs += 1
        key = a.key
        assert key is not None
        if isinstance(ra, Exchange) and isinstance(rb, Exchange):
            changes = compare_exchanges(ra, rb, self._options.schema, self._options.latency)
            if talks is not None:
                changes += websocket_changes(*talks)
            route: tuple = (ra.callee.name, key.method, key.route)  # route_key(ra), known
            kept, noise = self._filter.static(changes, carried_ids(ra, rb))
        else:  # two tunnels (a key says which kind)
            kept, noise = compare_tunnels(ra, rb), []  # type: ignore[arg-type]
            route = ()
        if not kept and not (noise and self._options.show_noise):
            self.summary.noise_fields += len(noise)
            return None
        return [key.astuple(), _side(a.number, ra), _side(b.number, rb), route,
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


def _side(number: str, r: Exchange | Tunnel) -> tuple:
    s = side_of(number, r)
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


def _in_step(streams: list[Iterator[_Read]]) -> Iterable[tuple[int, _Read]]:
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
