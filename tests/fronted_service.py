"""A small real service for fronting tests: `python tests/fronted_service.py PORT`.

GET /          → {"pid": <its pid>, "path": "/"}
GET /call?url= → calls `url` with urllib (which honours the proxy environment tapproxy
                 gives a service it starts) and answers with what came back.
It prints one line on stdout when it listens and one on stderr per /call, so tests can
see that its output passes through.
"""

import asyncio
import os
import sys
import urllib.request

from aiohttp import web


async def root(request: web.Request) -> web.Response:
    return web.json_response({"pid": os.getpid(), "path": request.path_qs})


async def call(request: web.Request) -> web.Response:
    url = request.query["url"]
    print(f"calling {url}", file=sys.stderr, flush=True)

    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read()

    return web.Response(body=await asyncio.to_thread(fetch), content_type="application/json")


def main() -> None:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    app = web.Application()
    app.router.add_get("/call", call)
    app.router.add_get("/{tail:.*}", root)
    print(f"listening on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
