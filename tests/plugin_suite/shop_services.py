"""Services of the sample suite, run as processes: gateway → orders → payments.

`python shop_services.py NAME PORT` serves one; payments declines the card `bad` with a
500 and a line on stderr, orders turns that into a 502, the gateway passes it on.
"""

import os
import sys

import aiohttp
from aiohttp import web


async def _post(url, payload):
    # trust_env: aiohttp ignores HTTP_PROXY otherwise; tapproxy_service sets it.
    async with aiohttp.ClientSession(trust_env=True) as s, s.post(url, json=payload) as r:
        return r.status, await r.json()


async def charge(request):
    body = await request.json()
    if body.get("card") == "bad":
        print("ERROR card declined: issuer said no", file=sys.stderr, flush=True)
        return web.json_response({"error": "declined"}, status=500)
    print(f"charged {body['amount']}", flush=True)
    return web.json_response({"charged": body["amount"]}, status=201)


async def create_order(request):
    body = await request.json()
    status, _ = await _post(f"{os.environ['PAYMENTS_URL']}/charges",
                            {"card": body["card"], "amount": 5})
    if status != 201:
        print(f"payment failed with {status}", flush=True)
        return web.json_response({"error": "payment failed"}, status=502)
    return web.json_response({"order": 1}, status=201)


async def checkout(request):
    status, answer = await _post(f"{os.environ['ORDERS_URL']}/orders", await request.json())
    return web.json_response(answer, status=status)


async def health(request):
    return web.json_response({"ok": True})


async def proxy_env(request):
    """The proxy settings the service was started with (none, without --tapproxy)."""
    return web.json_response({k: os.environ.get(k) for k in ("HTTP_PROXY", "http_proxy")})


ROUTES = {"payments": ("/charges", charge), "orders": ("/orders", create_order),
          "gateway": ("/checkout", checkout)}


def health_app(argv):
    """For `python -m aiohttp.web shop_services:health_app` (tapproxy_service's app=)."""
    app = web.Application()
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    path, handler = ROUTES[name]
    app = web.Application()
    app.router.add_post(path, handler)
    app.router.add_get("/env", proxy_env)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
