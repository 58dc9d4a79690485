"""`--record-missing`: what nothing in the capture answers goes to a live service, and
the exchange is appended to a new capture (never to the one being replayed).

The live service sees the request as the client sent it (hop-by-hop headers and the
`x-tapproxy-*` ones aside) and the client gets the live answer, content-encoding kept.
A service with no upstream given still gets the near-miss 502.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tapproxy.capture.format import new_header
from tapproxy.capture.model import ErrorInfo, Exchange, Headers, Party, Request, Response, Timing
from tapproxy.capture.writer import CaptureWriter
from tapproxy.replay.answer import Answer, answer_for
from tapproxy.replay.matcher import Matcher
from tapproxy.replay.matching import RequestView
from tapproxy.replay.options import ReplayOptions

__all__ = ["MissingRecorder"]

_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                  "upgrade", "proxy-connection", "proxy-authorization", "host",
                  "content-length"})


class MissingRecorder:
    """Forwards misses to their upstream and writes each exchange to `missing_output`."""

    def __init__(self, opts: ReplayOptions, matcher: Matcher) -> None:
        self.upstreams = dict(opts.record_missing)
        self.output = opts.missing_output
        self.source = str(opts.capture)
        self.count = 0
        self._writer: CaptureWriter | None = None
        self._session: aiohttp.ClientSession | None = None
        self.matcher = matcher  # names the test open now

    def add_upstream(self, name: str, url: str) -> None:
        self.upstreams[name] = url.rstrip("/")

    def _upstream(self, callee: str | None) -> str | None:
        return self.upstreams.get(callee or "*") or self.upstreams.get("*")

    async def forward(self, callee: str | None, request: web.BaseRequest, view: RequestView,
                      body: bytes) -> Answer | None:
        """The live answer to a request nothing matched, recorded; None with no upstream."""
        base = self._upstream(callee)
        if base is None:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False, trust_env=False)
        target = urlsplit(base)
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in _HOP and not k.lower().startswith("x-tapproxy-")]
        start = time.time_ns()
        response = error = None
        try:
            async with self._session.request(
                    request.method, base + request.raw_path, headers=headers, data=body,
                    allow_redirects=False) as r:
                first = time.time_ns()
                content = await r.read()
                response = Response(r.status, r.reason or "", f"HTTP/{r.version.major}."
                                    f"{r.version.minor}", Headers.from_raw(tuple(
                                        r.raw_headers)), content)
        except (aiohttp.ClientError, OSError) as e:
            first = time.time_ns()
            error = ErrorInfo("refused" if isinstance(e, aiohttp.ClientConnectorError)
                              else "other", str(e))
        end = time.time_ns()
        peer = request.remote or "?"
        test = request.headers.get("x-tapproxy-test")
        if test is None:
            test = self.matcher.current_test(None)
        x = Exchange(
            id=uuid.uuid4().hex, caller=Party(f"?{peer}", "peer", peer),
            callee=Party(callee or target.hostname or "?", "reverse",
                         f"{target.hostname}:{target.port or 80}"),
            request=Request(request.method, target.scheme, target.hostname or "",
                            target.port or (443 if target.scheme == "https" else 80),
                            request.raw_path, f"HTTP/{request.version.major}."
                            f"{request.version.minor}", Headers(tuple(headers)), body),
            timing=Timing(start, start, first if response else None, end if response else None,
                          error_at=None if response else end),
            response=response, error=error, test=test,
            test_source="header" if request.headers.get("x-tapproxy-test") else "control")
        if self._writer is None:
            self._writer = CaptureWriter(self.output, new_header(
                {"replay": "missing", "replayed": self.source}))
        self._writer.write(x)
        self.count += 1
        return answer_for(x)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._writer is not None:
            self._writer.close()
