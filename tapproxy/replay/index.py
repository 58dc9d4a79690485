"""The capture as replay reads it: one small entry per exchange, bodies left on disk.

Built in one streaming pass. An entry keeps where its record is (CaptureReader's
position), its callee, test, method and path; the record itself, with its bodies, is
read again only when it is keyed, served or shown, so memory grows with the number of
exchanges, never with their bodies. The first request to a route keys all of that
route's recorded requests at once (a route recorded 100,000 times takes seconds then).
"""

from __future__ import annotations

import gc
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
    answer: str | None  # why it cannot be served as recorded, else None
    websocket: bool
    has_body: bool  # the request had one (else its key needs no second read)
    key: tuple | None = None  # the `--match` criteria's values, once its route is asked for
    body_key: tuple | None = None


def recorded_view(x: Exchange) -> RequestView:
    """The recorded request as matching reads it."""
    q = x.request
    return RequestView(q.method, q.path_only, q.query, q.content_type,
                       q.headers.get("content-encoding"), q.body,
                       q.body_sha256 if q.body_truncated else None)


def _text(v: object) -> str:
    # Text that was not UTF-8 is stored as bin (codec._str_or_bin).
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def _answer_problem(r: object) -> str | None:
    """Why a recorded response (its wire map) cannot be served whole, else None."""
    if isinstance(r, dict) and r.get("body_size") is not None:
        return (f"its response body was kept only in part ({len(r.get('body') or b'')} of "
                f"{r['body_size']} bytes, over --max-body when recorded)")
    return None


class CaptureIndex:
    """The exchanges of one capture by callee and route, records read on demand.

    Start-up reads each record's few fields undecoded (`raw_records`); a request's
    key (its query and body, noise masked) is worked out only when a request for the
    same callee, method and path first comes, for the exchanges of that route alone.
    """

    def __init__(self, path: Path, criteria: tuple[str, ...], mask: Mask) -> None:
        self.path = Path(path)
        self.criteria = criteria
        self.mask = mask
        self.entries: list[Entry] = []
        self.by_route: dict[tuple, list[int]] = {}  # (callee, method?, path?) → entries
        self.by_callee: dict[str, list[int]] = {}
        self.addresses: dict[str, str] = {}  # callee → the address it was recorded at
        self.targets: dict[tuple[str, int], str] = {}  # recorded request host:port → callee
        self.websocket: dict[str, list[Position]] = {}  # exchange id → its messages
        self.websocket_end: dict[str, Position] = {}
        self.problem: str | None = None  # the capture ends inside a record
        self._keyed: dict[tuple, dict[tuple, list[int]]] = {}
        self._strings: dict[str, str] = {}
        self._cache: OrderedDict[Position, object] = OrderedDict()
        self._reader: CaptureReader = open_capture(self.path)
        # The scan makes ~6 objects per exchange and frees none: the cyclic collector,
        # run every few hundred allocations, would walk them all again each time (most
        # of a 100,000-exchange start-up). It finds no garbage here; it is paused.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._scan()
        except BaseException:
            self._reader.close()
            raise
        finally:
            if collecting:
                gc.enable()
        if not self.entries:
            self._reader.close()
            raise ReplayError(f"{self.path}: no exchanges to replay")

    def _scan(self) -> None:
        # The hot loop of a start-up (~100,000 iterations): names bound locally, one
        # dict lookup per field.
        reader = self._reader
        entries, by_route, by_callee = self.entries, self.by_route, self.by_callee
        strings, targets, addresses = self._strings, self.targets, self.addresses
        one = strings.setdefault  # names repeat: one string each, not one per entry
        use_method, use_path = "method" in self.criteria, "path" in self.criteria
        ws_ids: set[str] = set()
        for position, d in reader.raw_records():
            kind = d.get("kind")
            if kind != "exchange":
                exchange_id = d.get("exchange_id")
                if kind == "ws_message" and type(exchange_id) is str:
                    self.websocket.setdefault(exchange_id, []).append(position)
                elif kind == "ws_end" and type(exchange_id) is str:
                    self.websocket_end[exchange_id] = position
                continue
            try:
                q, callee_map = d["request"], d["callee"]
                callee = callee_map["name"]
                if type(callee) is not str:
                    raise TypeError("callee.name is not text")
                callee = one(callee, callee)
                method = _text(q["method"])
                method = one(method, method)
                path, _, query = _text(q["path"]).partition("?")
                test = d.get("test")
                test = one(test, test) if type(test) is str else None
                websocket = d.get("websocket") is True
                r = d.get("response")
                cut = _answer_problem(r) if r and "body_size" in r else None
                i = len(entries)
                entries.append(Entry(i + 1, position, callee, test, method, path, query,
                                     cut, websocket, bool(q.get("body"))))
                route = (callee, method.upper() if use_method else None,
                         path if use_path else None)
                by_route.setdefault(route, []).append(i)
                by_callee.setdefault(callee, []).append(i)
                target = (q["host"].lower(), int(q["port"]))
                if target not in targets:
                    targets[target] = callee
                if callee not in addresses:
                    addresses[callee] = str(callee_map.get("address")
                                            or f"{target[0]}:{target[1]}")
                if websocket:
                    ws_ids.add(d["id"])
            except (KeyError, TypeError, AttributeError, ValueError) as e:
                raise reader.malformed(f"exchange field {e}") from None
        if reader.truncated:
            self.problem = reader.problem
        # Messages of a connection whose handshake was never written have nothing to
        # belong to; keep only the others' (their ids were the one thing that joined them).
        self.websocket = {k: v for k, v in self.websocket.items() if k in ws_ids}

    def _route(self, callee: str, method: str, path: str) -> tuple:
        return (callee, method.upper() if "method" in self.criteria else None,
                path if "path" in self.criteria else None)

    def route_entries(self, callee: str, method: str, path: str) -> list[int]:
        """The entries of `callee` that `--match` cannot tell apart without query or body."""
        return self.by_route.get(self._route(callee, method, path), [])

    def lookup(self, callee: str, view: RequestView, key: tuple) -> list[int]:
        """The entries of `callee` whose request has `key` (of `view`), in file order."""
        route = self._route(callee, view.method, view.path)
        keyed = self._keyed.get(route)
        if keyed is None:
            keyed = {}
            for i in self.by_route.get(route, ()):
                keyed.setdefault(self.key_of(self.entries[i]), []).append(i)
            self._keyed[route] = keyed  # only whole: a record that failed is tried again
        return keyed.get(key, [])

    def key_of(self, entry: Entry) -> tuple:
        """The entry's request key, worked out from its record the first time."""
        if entry.key is None:
            if entry.has_body:
                view = recorded_view(self._reader.record_at(entry.position))  # type: ignore[arg-type]
            else:  # what the index holds is the whole request as matching reads it
                view = RequestView(entry.method, entry.path, entry.query, "", None, b"")
            entry.key = request_key(view, self.criteria, self.mask)
            entry.body_key = body_key(view, self.mask)
        return entry.key

    def body_key_of(self, entry: Entry) -> tuple:
        if entry.body_key is None:
            self.key_of(entry)
        assert entry.body_key is not None
        return entry.body_key

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

