"""The capture as replay reads it: one small entry per exchange, bodies left on disk.

Built in one streaming pass. An entry keeps where its record is (CaptureReader's
position), its callee, test and request key; the record itself, with its bodies, is
read again only when it is served or shown (`exchange`), so memory grows with the
number of exchanges, never with their bodies.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tapproxy.capture.format import CaptureReader, open_capture
from tapproxy.capture.model import Exchange, WebSocketEnd, WebSocketMessage
from tapproxy.errors import ReplayError
from tapproxy.replay.matching import Mask, RequestView, body_key, request_key

__all__ = ["CaptureIndex", "Entry", "recorded_view"]

_CACHED = 256  # exchanges kept decoded: a test's repeated calls need no second read

type Position = tuple[int, int]


@dataclass(slots=True)
class Entry:
    """One recorded exchange, as far as matching needs it."""

    number: int  # counted from 1 in file order, as `tapproxy show` numbers exchanges
    position: Position
    callee: str
    test: str | None
    method: str
    path: str  # without the query
    query: str
    body_key: tuple
    key: tuple  # the `--match` criteria's values
    answer: str | None  # why it cannot be served as recorded, else None
    websocket: bool


def recorded_view(x: Exchange) -> RequestView:
    """The recorded request as matching reads it."""
    q = x.request
    return RequestView(q.method, q.path_only, q.query, q.content_type,
                       q.headers.get("content-encoding"), q.body,
                       q.body_sha256 if q.body_truncated else None)


def _answer_problem(x: Exchange) -> str | None:
    r = x.response
    if r is not None and r.body_truncated:
        return (f"its response body was kept only in part ({len(r.body)} of {r.body_size} "
                "bytes, over --max-body when recorded)")
    return None


class CaptureIndex:
    """The exchanges of one capture by callee and request key, records read on demand."""

    def __init__(self, path: Path, criteria: tuple[str, ...], mask: Mask) -> None:
        self.path = Path(path)
        self.criteria = criteria
        self.mask = mask
        self.entries: list[Entry] = []
        self.by_key: dict[tuple[str, tuple], list[int]] = {}
        self.by_callee: dict[str, list[int]] = {}
        self.addresses: dict[str, str] = {}  # callee → the address it was recorded at
        self.targets: dict[tuple[str, int], str] = {}  # recorded request host:port → callee
        self.websocket: dict[str, list[Position]] = {}  # exchange id → its messages
        self.websocket_end: dict[str, Position] = {}
        self.problem: str | None = None  # the capture ends inside a record
        self._cache: OrderedDict[Position, object] = OrderedDict()
        self._reader: CaptureReader = open_capture(self.path)
        try:
            self._scan()
        except BaseException:
            self._reader.close()
            raise
        if not self.entries:
            self._reader.close()
            raise ReplayError(f"{self.path}: no exchanges to replay")

    def _scan(self) -> None:
        reader = self._reader
        ws_ids: dict[str, int] = {}
        for record in reader:
            if isinstance(record, Exchange):
                self._add(record, reader.position)
                if record.websocket:
                    ws_ids[record.id] = len(self.entries) - 1
            elif isinstance(record, WebSocketMessage):
                self.websocket.setdefault(record.exchange_id, []).append(reader.position)
            elif isinstance(record, WebSocketEnd):
                self.websocket_end[record.exchange_id] = reader.position
        if reader.truncated:
            self.problem = reader.problem
        # Messages of a connection whose handshake was never written have nothing to
        # belong to; keep only the others' (their ids were the one thing that joined them).
        self.websocket = {k: v for k, v in self.websocket.items() if k in ws_ids}

    def _add(self, x: Exchange, position: Position) -> None:
        i = len(self.entries)
        callee = x.callee.name
        view = recorded_view(x)
        key = request_key(view, self.criteria, self.mask)
        bkey = key[-1] if self.criteria[-1] == "body" else body_key(view, self.mask)
        self.entries.append(Entry(
            i + 1, position, callee, x.test, x.request.method, view.path, view.query,
            bkey, key, _answer_problem(x), x.websocket))
        self.by_key.setdefault((callee, key), []).append(i)
        self.by_callee.setdefault(callee, []).append(i)
        if callee not in self.addresses:
            self.addresses[callee] = x.callee.address or f"{x.request.host}:{x.request.port}"
        self.targets.setdefault((x.request.host.lower(), x.request.port), callee)

    @property
    def callees(self) -> list[str]:
        """Every recorded callee, in the order each was first called."""
        return list(self.by_callee)

    def exchange(self, entry: Entry) -> Exchange:
        """The entry's whole record, bodies included (read again from the file)."""
        record = self._read(entry.position)
        assert isinstance(record, Exchange)
        return record

    def websocket_records(self, entry: Entry) -> list[WebSocketMessage | WebSocketEnd]:
        """The messages of a recorded WebSocket, in recorded order, then its end."""
        x = self.exchange(entry)
        records = [self._read(p) for p in self.websocket.get(x.id, ())]
        end = self.websocket_end.get(x.id)
        return [*records, *(() if end is None else (self._read(end),))]  # type: ignore[list-item]

    def _read(self, position: Position):
        cached = self._cache.get(position)
        if cached is not None:
            self._cache.move_to_end(position)
            return cached
        record = self._reader.record_at(position)
        self._cache[position] = record
        if len(self._cache) > _CACHED:
            self._cache.popitem(last=False)
        return record

    def close(self) -> None:
        self._reader.close()

