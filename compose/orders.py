"""A service with no instrumentation: calls inventory through whatever HTTP_PROXY says."""

import os

import aiohttp
from aiohttp import web


async def order(request: web.Request) -> web.Response:
    sku = request.match_info["sku"]
    # trust_env: the proxy (and the caller name in it) comes from HTTP_PROXY, as in any app.
    async with (
        aiohttp.ClientSession(trust_env=True) as s,
        s.get(f"{os.environ['INVENTORY_URL']}/status/{sku}") as r,
    ):
        return web.json_response({"sku": sku, "inventory_status": r.status},
                                 status=201 if r.status == 200 else 502)


app = web.Application()
app.router.add_post("/orders/{sku}", order)
web.run_app(app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8000")))
