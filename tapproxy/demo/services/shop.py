"""The shop (aiohttp): the front the tests call. It asks the catalog for the price,
the inventory (gRPC) for stock and payments for the money; none of it knows tapproxy.

Run as `python -m aiohttp.web … tapproxy.demo.services.shop:make_app`, configured by
CATALOG_URL, INVENTORY_ADDRESS and PAYMENTS_URL.
"""

from __future__ import annotations

import os

import aiohttp
import grpc
from aiohttp import web

from tapproxy.demo.services.inventory_api import METHOD, ReserveReply, ReserveRequest


async def _startup(app: web.Application) -> None:
    # trust_env: through HTTP_PROXY where one is set (compose/), as most clients do.
    app["http"] = aiohttp.ClientSession(trust_env=True)
    app["grpc"] = grpc.aio.insecure_channel(os.environ["INVENTORY_ADDRESS"])
    app["reserve"] = app["grpc"].unary_unary(
        METHOD, request_serializer=ReserveRequest.SerializeToString,
        response_deserializer=ReserveReply.FromString)


async def _cleanup(app: web.Application) -> None:
    await app["http"].close()
    await app["grpc"].close()


async def _product(app: web.Application, sku: str) -> tuple[int, dict]:
    async with app["http"].get(f"{os.environ['CATALOG_URL']}/products/{sku}") as r:
        return r.status, await r.json()


async def product(request: web.Request) -> web.Response:
    status, body = await _product(request.app, request.match_info["sku"])
    return web.json_response(body, status=status)


async def place_order(request: web.Request) -> web.Response:
    order = await request.json()
    status, item = await _product(request.app, order["sku"])
    if status != 200:
        return web.json_response({"error": "no such product"}, status=404)
    amount = round(item["price"] * order["qty"], 2)  # a price as a string breaks here
    stock = await request.app["reserve"](ReserveRequest(sku=order["sku"], qty=order["qty"]))
    if not stock.reserved:
        return web.json_response({"error": "out of stock", "left": stock.left}, status=409)
    charge = {"amount": amount, "card": order["card"]}
    async with request.app["http"].post(f"{os.environ['PAYMENTS_URL']}/charges",
                                        json=charge) as r:
        if r.status != 201:
            return web.json_response({"error": "payment failed"}, status=502)
        paid = await r.json()
    return web.json_response({"order_id": 7, "charge": paid["charge_id"], "amount": amount},
                             status=201)


def make_app(argv: list[str] | None = None) -> web.Application:
    app = web.Application()
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    app.router.add_get("/products/{sku}", product)
    app.router.add_post("/orders", place_order)
    return app
