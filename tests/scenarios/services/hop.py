"""One hop of a cascade, configured on its command line: `python hop.py PORT CONFIG`.

CONFIG is JSON: {"ROUTE": {...}} with ROUTE like "POST /orders" and, each optional:
  calls        [{"method": "POST", "url": "http://127.0.0.1:P/path"}], made in order
  parallel     make the calls at once instead
  attempts     tries per call until one answers below 400 (retries)
  timeout      seconds a call may take (then it failed)
  ignore       answer `status` even when a call failed (a handled failure)
  status       the answer when every call went well (default 200)
  fail_status  the answer when a call failed (default 502)
  sleep        seconds to wait before answering (a slow service)
  reset        close the connection with a TCP reset instead of answering
Calls go through HTTP_PROXY (`trust_env`), whose user names this service.
"""

import asyncio
import json
import socket
import struct
import sys

import aiohttp
from aiohttp import web


async def _call(session: aiohttp.ClientSession, call: dict, spec: dict) -> bool:
    """Whether the call went well, after up to `attempts` tries."""
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout"))
    for _ in range(spec.get("attempts", 1)):
        try:
            async with session.request(call.get("method", "POST"), call["url"],
                                       json={"hop": call["url"]}, timeout=timeout) as r:
                await r.read()
                if r.status < 400:
                    return True
        except (aiohttp.ClientError, TimeoutError):
            pass
    return False


def _reset(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket")
    # SO_LINGER 0: close() sends RST rather than FIN, as a crashed peer would.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()


def handler(spec: dict):
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        ok = True
        calls = spec.get("calls", [])
        if calls:
            async with aiohttp.ClientSession(trust_env=True) as session:
                if spec.get("parallel"):
                    results = await asyncio.gather(*(_call(session, c, spec) for c in calls))
                else:
                    results = [await _call(session, c, spec) for c in calls]
            ok = all(results) or spec.get("ignore", False)
        if spec.get("sleep"):
            await asyncio.sleep(spec["sleep"])
        if spec.get("reset"):
            _reset(request)
            return web.Response()  # never sent: the connection is gone
        status = spec.get("status", 200) if ok else spec.get("fail_status", 502)
        return web.json_response({"ok": ok}, status=status)

    return handle


def main() -> None:
    port, config = int(sys.argv[1]), json.loads(sys.argv[2])
    app = web.Application()
    for route, spec in config.items():
        method, path = route.split(" ", 1)
        app.router.add_route(method, path, handler(spec))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                shutdown_timeout=0.1)


if __name__ == "__main__":
    main()
