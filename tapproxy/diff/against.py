"""`tapproxy replay run.tap --against NAME=URL`: the requests that went to NAME re-sent to
a live target in recorded order, each live answer compared with the recorded one by the
same engine as `diff` (noise learned from the capture set aside); a WebSocket's
conversation had again (`ws_client`) and compared as `diff` compares two.

The only part of `diff` with sockets: an aiohttp client, one request at a time, bodies
sent and read as bytes (content-encodings as recorded, answers not decompressed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from tapproxy.capture.format import CaptureReader
from tapproxy.capture.model import (
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Record,
    Response,
    Timing,
    WebSocketEnd,
    WebSocketMessage,
)
from tapproxy.diff.compare import compare_exchanges
from tapproxy.diff.conversations import learnable
from tapproxy.diff.engine import DiffOptions, side_of
from tapproxy.diff.model import Change, PairDiff, Side, Summary
from tapproxy.diff.noise import NoiseFilter
from tapproxy.diff.websocket import Conversation, websocket_changes
from tapproxy.errors import DiffError, UsageError
from tapproxy.report.parties import callee_with_port

__all__ = ["AgainstRun", "parse_target", "replay_against"]

# Not re-sent: what the connection or the client sets itself, and what was tapproxy's.
_NOT_SENT = {"host", "content-length", "connection", "keep-alive", "proxy-connection",
             "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


def parse_target(spec: str) -> tuple[str, str]:
    """`NAME=URL` → (name, base URL without a trailing /): UsageError naming it."""
    name, sep, url = spec.partition("=")
    parts = urlsplit(url)
    if not sep or not name or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad --against {spec!r}: expected NAME=URL, e.g. "
                         "orders=http://127.0.0.1:5001")
    return name, url.rstrip("/")


@dataclass
class AgainstRun:
    """Iterate for each re-sent exchange's comparison; then `summary` and `skipped`
    (why each exchange not re-sent was not, by reason)."""

    capture: CaptureReader
    name: str
    url: str
    options: DiffOptions
    timeout: float = 30.0
    summary: Summary = field(default_factory=Summary)
    skipped: dict[str, int] = field(default_factory=dict)
    # handshake id → where its WebSocket messages and end are
    _sockets: dict[str, list[tuple[int, int]]] = field(default_factory=dict, init=False,
                                                       repr=False)

    def __iter__(self) -> Iterator[PairDiff]:
        from tapproxy.noise import NoiseModel

        # One pass: the noise of the whole capture, where NAME's exchanges are, and
        # where their WebSocket messages are (by handshake id; those of a handshake not
        # read yet kept too: the format puts them after it, a merge may not).
        wanted: list[tuple[int, int, int, int]] = []  # request start, n, record, offset
        callees: set[str] = set()
        seen: set[str] = set()
        n = 0

        def records() -> Iterator[Record]:
            nonlocal n
            for r in self.capture:
                if isinstance(r, WebSocketMessage | WebSocketEnd):
                    xid = r.exchange_id
                    if xid in self._sockets or xid not in seen:
                        self._sockets.setdefault(xid, []).append(self.capture.position)
                    yield r
                    continue
                if not isinstance(r, Exchange):
                    continue
                n += 1
                callee = callee_with_port(r).callee.name
                callees.add(callee)
                seen.add(r.id)
                if self.name in (callee, r.callee.name):
                    wanted.append((r.timing.request_start, n, *self.capture.position))
                    if r.websocket:
                        self._sockets.setdefault(r.id, [])
                else:
                    self._sockets.pop(r.id, None)
                yield r

        noise = NoiseFilter(self.options.ignore)
        noise.learned(NoiseModel.learn(learnable(records())))
        if not wanted:
            known = ", ".join(sorted(callees)[:8]) or "none"
            raise DiffError(f"{self.capture.path}: no exchanges to {self.name!r} "
                            f"(callees: {known})")
        wanted.sort()
        loop = asyncio.new_event_loop()
        session = loop.run_until_complete(_session(self.timeout))
        try:
            for _, number, index, offset in wanted:
                x = self.capture.record_at((index, offset))
                assert isinstance(x, Exchange)
                why = _not_resent(x)
                if why is not None:
                    self.skipped[why] = self.skipped.get(why, 0) + 1
                    continue
                if x.websocket:
                    live, changes = loop.run_until_complete(self._converse(x))
                    yield self._compared(number, x, live, noise, changes)
                    continue
                send = _send_grpc if x.is_grpc else _send
                live = loop.run_until_complete(send(session, self.url, x, self.timeout))
                yield self._compared(number, x, live, noise)
        finally:
            loop.run_until_complete(session.close())
            loop.close()

    async def _converse(self, x: Exchange) -> tuple[Exchange, list[Change]]:
        """A recorded WebSocket conversation had again with the live target: the live
        handshake, and how the live conversation differs from the recorded one."""
        from tapproxy.diff.ws_client import converse

        records = [self.capture.record_at(p) for p in self._sockets.pop(x.id, ())]
        recorded = Conversation(
            tuple(r for r in records if isinstance(r, WebSocketMessage)),
            next((r for r in records if isinstance(r, WebSocketEnd)), None))
        live, talk = await converse(self.url, x, recorded, self.timeout)
        return live, [] if talk is None else websocket_changes(recorded, talk)

    def _compared(self, number: int, x: Exchange, live: Exchange,
                  noise: NoiseFilter, more: Iterable[Change] = ()) -> PairDiff:
        from tapproxy.diff.align import align_key
        from tapproxy.noise import route_key

        kept, noisy = noise.static(compare_exchanges(x, live, self.options.schema,
                                                     self.options.latency) + list(more))
        route = route_key(x)
        learned = [c for c in kept if noise.is_learned(route, c)]
        kept = [c for c in kept if c not in learned]
        noisy += learned
        self.summary.pairs += 1
        self.summary.differing += bool(kept)
        self.summary.noise_fields += len(noisy)
        s = side_of("live", live)
        return PairDiff(align_key(x), side_of(str(number), x),
                        Side("live", "", s.outcome, s.duration_ns), tuple(kept), len(noisy),
                        tuple(noisy) if self.options.show_noise else ())


def _not_resent(x: Exchange) -> str | None:
    if x.request.body_truncated:
        return "request body kept only in part"
    return None


async def _session(timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))


async def _send_grpc(session: aiohttp.ClientSession, base: str, x: Exchange,
                     timeout: float) -> Exchange:
    """A gRPC call over HTTP/2 (aiohttp speaks HTTP/1.1 and reads no trailers)."""
    from tapproxy.diff.grpc_client import send_grpc

    response, timing, error, messages = await send_grpc(base, x, timeout)
    return Exchange(id=f"live:{x.id}", caller=Party("tapproxy", "service"),
                    callee=x.callee, request=x.request, timing=timing, response=response,
                    error=error, test=x.test, route=x.route, grpc_messages=messages)


async def _send(session: aiohttp.ClientSession, base: str, x: Exchange,
                timeout: float) -> Exchange:
    """`x`'s request sent to `base` + its path; the live answer as an Exchange."""
    q = x.request
    headers = [(k, v) for k, v in q.headers if k.lower() not in _NOT_SENT
               and not k.lower().startswith("x-tapproxy-")]
    start = time.time_ns()
    try:
        async with session.request(q.method, base + q.path, headers=headers, data=q.body or None,
                                   allow_redirects=False) as resp:
            first = time.time_ns()
            body = await resp.read()
            response = Response(resp.status, resp.reason or "",
                                f"HTTP/{resp.version.major}.{resp.version.minor}"
                                if resp.version else "",
                                Headers.from_raw(tuple(resp.raw_headers)), body)
            timing = Timing(start, start, first, time.time_ns())
            error = None
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        response, timing, error = None, Timing(start, error_at=time.time_ns()), transport_error(e)
    return Exchange(id=f"live:{x.id}", caller=Party("tapproxy", "service"),
                    callee=x.callee, request=q, timing=timing, response=response,
                    error=error, test=x.test, route=x.route)


def transport_error(e: BaseException) -> ErrorInfo:
    """How a request failed in transport, as an exchange records it."""
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return ErrorInfo("timeout", str(e) or "timed out")
    if isinstance(e, aiohttp.ClientConnectorError):
        return ErrorInfo("refused", str(e))
    if isinstance(e, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return ErrorInfo("reset", str(e))
    return ErrorInfo("other", str(e))


def replay_against(capture: CaptureReader, name: str, url: str,
                   options: DiffOptions | None = None, timeout: float = 30.0) -> AgainstRun:
    """Re-send the requests to `name` of `capture` to `url`; iterate the result for each
    comparison, then read its `summary` (exit code as `diff`: 1 if anything differs)."""
    return AgainstRun(capture, name, url, options or DiffOptions(), timeout)
