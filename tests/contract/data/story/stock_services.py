"""Services of the contract suite, run as processes: gateway → inventory.

`python stock_services.py NAME PORT` serves one. inventory answers the stock of A-1
with `qty` as a string ("3"), a drift from its contract (an integer), with status 200;
the gateway cannot reserve a quantity that is not a number and answers 500.
"""

import sys

import aiohttp
from aiohttp import web


async def stock(request):
    sku = request.match_info["sku"]
    return web.json_response({"sku": sku, "qty": "3" if sku == "A-1" else 3})


async def checkout(request):
    import os

    sku = (await request.json())["sku"]
    # trust_env: aiohttp ignores HTTP_PROXY otherwise; tapproxy_service sets it.
    async with aiohttp.ClientSession(trust_env=True) as s, \
            s.get(f"{os.environ['INVENTORY_URL']}/stock/{sku}") as r:
        answer = await r.json()
    if not isinstance(answer.get("qty"), int):
        return web.json_response({"error": "cannot reserve"}, status=500)
    return web.json_response({"reserved": answer["qty"]})


if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    app = web.Application()
    if name == "inventory":
        app.router.add_get("/stock/{sku}", stock)
    else:
        app.router.add_post("/checkout", checkout)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
