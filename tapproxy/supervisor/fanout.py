"""The one control API of `record --workers N`, in front of each worker's own: every
call goes to every live worker, and their answers come back as one.

A test is opened (and closed) in every worker before /tests/start (/tests/end)
answers, with the same start time, so the merged capture holds it once; /flush
flushes every part; /stats and /metrics add the workers' figures up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from tapproxy.analysis.metrics import Metrics
from tapproxy.report.stats import metrics_json
from tapproxy.supervisor.control import CAPTURE_TYPE, ControlServer
from tapproxy.supervisor.options import Address
from tapproxy.supervisor.workers import WorkerGroup

__all__ = ["FanOutControl"]

_SUMMED = ("exchanges", "errors", "tunnels", "records_written", "bytes_written",
           "records_lost")


class FanOutControl(ControlServer):
    """The control API at `address`, answering for every worker of `group`."""

    def __init__(self, group: WorkerGroup, address: Address) -> None:
        super().__init__(None, address.host, address.port)  # type: ignore[arg-type]
        self._group = group
        self._client: aiohttp.ClientSession | None = None
        self._started = time.time()

    async def start(self) -> None:
        # Never through a proxy: the environment may point HTTP_PROXY at ours.
        self._client = aiohttp.ClientSession(trust_env=False,
                                             timeout=aiohttp.ClientTimeout(total=60))
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.close()

    async def _each(self, method: str, route: str, body: dict | None = None,
                    ) -> list[tuple[int, object]]:
        """(status, JSON answer) of every live worker; a worker that dies meanwhile
        is left out (the group reports it)."""
        assert self._client is not None

        async def call(control: Address) -> tuple[int, object] | None:
            try:
                async with self._client.request(method, f"http://{control}{route}",
                                                json=body) as r:
                    return r.status, await r.json(content_type=None)
            except (aiohttp.ClientError, OSError, ValueError):
                return None

        answers = await asyncio.gather(*(call(c) for c in self._group.live_controls()))
        return [a for a in answers if a is not None]

    async def _each_worker(self, method: str, route: str) -> list[dict | None]:
        """Each worker's answer in worker order: None for one dead or failing."""
        assert self._client is not None

        async def call(w) -> dict | None:
            if not w.alive or w.control is None:
                return None
            try:
                async with self._client.request(method, f"http://{w.control}{route}") as r:
                    answer = await r.json(content_type=None)
                    return answer if r.status == 200 and isinstance(answer, dict) else None
            except (aiohttp.ClientError, OSError, ValueError):
                return None

        return list(await asyncio.gather(*(call(w) for w in self._group.workers)))

    @staticmethod
    def _first_error(answers: list[tuple[int, object]]) -> web.Response | None:
        for status, answer in answers:
            if status >= 400:
                return web.json_response(answer, status=status)
        if not answers:
            return web.json_response({"error": "no worker is running"}, status=503)
        return None

    async def _start(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        answers = await self._each("POST", "/tests/start",
                                   {"name": body["name"], "started": time.time_ns()})
        return self._first_error(answers) or web.json_response({"open": body["name"]},
                                                               status=201)

    async def _end(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        answers = await self._each("POST", "/tests/end", body)
        if (failed := self._first_error(answers)) is not None:
            return failed
        first = answers[0][1]
        assert isinstance(first, dict)
        return web.json_response({**first, "requests": sum(
            int(a.get("requests", 0)) for _, a in answers if isinstance(a, dict))})

    async def _service(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        answers = await self._each("POST", "/services", body)
        return self._first_error(answers) or web.json_response(answers[0][1], status=201)

    async def _list(self, request: web.Request) -> web.Response:
        answers = await self._each("GET", "/tests")
        return self._first_error(answers) or web.json_response(answers[0][1])

    async def _flush(self, request: web.Request) -> web.Response:
        answers = await self._each("POST", "/flush")
        if (failed := self._first_error(answers)) is not None:
            return failed
        return web.json_response({"records": sum(
            int(a.get("records", 0)) for _, a in answers if isinstance(a, dict))})

    async def _test_records(self, request: web.Request) -> web.Response:
        from tapproxy.capture.excerpt import records_of_test
        from tapproxy.capture.merge import merge_interleaved

        test = request.query.get("test")
        if not test:
            raise web.HTTPBadRequest(text="name the test: /tests/exchanges?test=NAME")
        answers = await self._each("POST", "/flush")
        if (failed := self._first_error(answers)) is not None:
            return failed
        parts = [w.part for w in self._group.workers if w.part.exists()]
        merged = Path(f"{self._group.options.output}.excerpt-{time.time_ns()}")

        def excerpt() -> bytes:
            try:
                merge_interleaved(parts, merged)
                return records_of_test(merged, test)
            finally:
                merged.unlink(missing_ok=True)

        return web.Response(body=await asyncio.to_thread(excerpt),
                            content_type=CAPTURE_TYPE)

    async def _stats(self, request: web.Request) -> web.Response:
        per_worker = await self._each_worker("GET", "/stats")
        answers = [a for a in per_worker if a]
        out: dict[str, object] = {k: sum(int(a.get(k) or 0) for a in answers)
                                  for k in _SUMMED}
        out["write_error"] = next((a["write_error"] for a in answers
                                   if a.get("write_error")), None)
        out["open_tests"] = answers[0].get("open_tests", []) if answers else []
        out["uptime_s"] = round(time.time() - self._started, 3)
        out["capture"] = str(Path(self._group.options.output).resolve())
        out["listen"] = str(self._group.options.listen)
        out["workers"] = [{**w, "exchanges": a.get("exchanges", 0)} if a else w
                          for w, a in zip(self._group.processes(), per_worker, strict=True)]
        out["workers_lost"] = list(self._group.lost)
        return web.json_response(out)

    async def _metrics(self, request: web.Request) -> web.Response:
        merged = Metrics()
        for status, state in await self._each("GET", "/metrics?state=1"):
            if status == 200 and isinstance(state, dict):
                merged.merge(Metrics.from_state(state))
        if request.query.get("state"):
            return web.json_response(merged.state())
        return web.json_response(metrics_json(merged))
