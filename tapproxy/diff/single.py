"""Two exchanges of one capture compared (`tapproxy diff run.tap --exchange 3
--exchange 7`; two WebSockets' conversations too), with the noise learned from that
capture set aside."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tapproxy.capture.format import CaptureReader
from tapproxy.capture.model import Exchange, Record, WebSocketEnd, WebSocketMessage
from tapproxy.diff.align import align_key
from tapproxy.diff.compare import compare_exchanges
from tapproxy.diff.conversations import learnable
from tapproxy.diff.engine import DiffOptions, side_of
from tapproxy.diff.model import PairDiff
from tapproxy.diff.noise import NoiseFilter, carried_ids
from tapproxy.diff.websocket import Conversation, websocket_changes
from tapproxy.errors import DiffError

__all__ = ["diff_exchanges"]


def _wanted(key: str, n: int, x: Exchange) -> bool:
    """Row `key` by its number as `show` numbers it, or by id (a prefix of 4 or more)."""
    return key == str(n) or x.id == key or (len(key) >= 4 and x.id.startswith(key))


def diff_exchanges(reader: CaptureReader, first: str, second: str,
                   options: DiffOptions | None = None,
                   routes: Callable[[Record], Record] | None = None) -> PairDiff:
    """Exchange `first` (expected) against `second` (actual) of one capture."""
    from tapproxy.noise import NoiseModel, route_key

    options = options or DiffOptions()
    found: dict[str, tuple[int, Exchange]] = {}
    talks: dict[str, Conversation] = {}  # the two exchanges', if WebSockets

    def records() -> Iterator[Record]:
        n = 0
        for r in reader:
            if isinstance(r, WebSocketMessage | WebSocketEnd):
                yield r
            if not isinstance(r, Exchange):
                continue
            n += 1
            x = routes(r) if routes else r
            for key in (first, second):
                if key not in found and _wanted(key, n, x):  # type: ignore[arg-type]
                    found[key] = (n, x)  # type: ignore[assignment]
            yield x

    def ended(x: Exchange, talk: Conversation) -> None:
        if any(x.id == f[1].id for f in found.values()):
            talks[x.id] = talk

    model = NoiseModel.learn(learnable(records(), ended))
    for key in (first, second):
        if key not in found:
            raise DiffError(f"{reader.path}: no exchange {key!r}")
    (na, a), (nb, b) = found[first], found[second]
    noise = NoiseFilter(options.ignore)
    noise.learned(model)
    changes = compare_exchanges(a, b, options.schema, options.latency)
    if a.websocket and b.websocket:
        changes += websocket_changes(talks[a.id], talks[b.id])
    kept, noisy = noise.static(changes, carried_ids(a, b))
    route = route_key(a)
    learned = [c for c in kept if noise.is_learned(route, c)]
    kept = [c for c in kept if c not in learned]
    noisy += learned
    return PairDiff(align_key(a), side_of(str(na), a), side_of(str(nb), b), tuple(kept),
                    len(noisy), tuple(noisy) if options.show_noise else (),
                    None if align_key(b) == align_key(a) else align_key(b))
