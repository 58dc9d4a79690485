"""A real aiohttp WebSocket service and a real client, recorded through the real proxy.

`chat_app(behaviour)` answers each client message with JSON, text or binary, and adds
what differs on every run (a session id, times, a random `seq`: noise); a test
changes `behaviour` to change the service. `converse(url)` is one conversation as a
client has it. The fixtures are in conftest.py.
"""

from __future__ import annotations

import datetime
import json
import random
import uuid
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

#: What the client says in each conversation, in order ("bye" ends it).
SAID = ('{"op": "price", "sku": "A"}', "ping", "blob", "bye")


@dataclass
class Behaviour:
    price: int = 5
    status: str = "ok"
    blob: bytes = b"\x00\x01\x02\x03"
    extra: bool = False  # one more message after the welcome
    upgrade: bool = True  # False: /chat answers 404, no WebSocket
    close_code: int = 4000


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def chat_app(behaviour: Behaviour) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        if not behaviour.upgrade:
            return web.json_response({"error": "gone"}, status=404)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "welcome", "session": str(uuid.uuid4()),
                                      "at": _now(), "seq": random.randrange(10**6)}))
        if behaviour.extra:
            await ws.send_str(json.dumps({"type": "notice", "text": "maintenance"}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if msg.data == "bye":
                await ws.close(code=behaviour.close_code, message=b"done")
            elif msg.data == "ping":
                await ws.send_str(f"pong\nat {_now()}\nstatus {behaviour.status}")
            elif msg.data == "blob":
                await ws.send_bytes(behaviour.blob)
            else:
                sku = json.loads(msg.data)["sku"]
                await ws.send_str(json.dumps({"type": "price", "sku": sku,
                                              "price": behaviour.price,
                                              "seq": random.randrange(10**6)}))
        return ws

    app = web.Application()
    app.router.add_get("/chat", chat)
    return app


async def converse(url: str, said: tuple[str, ...] = SAID) -> None:
    """One conversation as a client has it: each line of `said`, then read to the
    server's close (without a "bye": the client closes, with 1000)."""
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.receive()  # the welcome
        for text in said:
            await ws.send_str(text)
            if text != "bye":
                await ws.receive()
        if "bye" not in said:
            return  # closed on leaving the block
        # to the server's close, so that its code is the one recorded
        while (await ws.receive()).type not in (WSMsgType.CLOSE, WSMsgType.CLOSED,
                                                WSMsgType.CLOSING):
            pass
