"""Route templates: parsing, matching, and the record transform that sets Exchange.route."""

from __future__ import annotations

import pytest
import requests
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture.model import Exchange, Party, Request, Timing
from tapproxy.capture.routes import RouteTable, parse_route
from tapproxy.errors import UsageError
from tapproxy.proxy.options import ServiceSpec


def _x(path: str, callee: str = "shop", route: str | None = None) -> Exchange:
    return Exchange("1", Party("c", "header"), Party(callee, "service-map"),
                    Request("GET", "http", "h", 80, path, "HTTP/1.1"), Timing(1), route=route)


@pytest.mark.parametrize(("specs", "service", "path", "route"), [
    (("/orders/{id}",), "shop", "/orders/42", "/orders/{id}"),
    (("/orders/{id}",), "shop", "/orders/42?x=1", "/orders/{id}"),
    (("/orders/{id}",), "shop", "/orders/42/", "/orders/{id}"),
    (("/orders/{id}",), "shop", "/orders/", None),  # a parameter is never empty
    (("/orders/{id}",), "shop", "/orders/4/items", None),  # nor more than one segment
    (("/orders/{id}", "/orders/new"), "shop", "/orders/new", "/orders/new"),  # literal wins
    (("payments:/charges/{id}",), "shop", "/charges/1", None),  # another service's route
    (("payments:/charges/{id}", "/charges/{x}"), "payments", "/charges/1", "/charges/{id}"),
    (("/a.b/{id}",), "shop", "/aXb/1", None),  # the template is literal, not a regex
])
def test_route_of(specs, service, path, route):
    assert RouteTable(specs).route_of(service, path) == route


@pytest.mark.parametrize("bad", ["orders/{id}", "/orders/{id", "/orders/id}", "shop:orders"])
def test_bad_templates_are_usage_errors(bad):
    with pytest.raises(UsageError, match="--route"):
        parse_route(bad)


@given(st.lists(st.text(alphabet="abc-_.~0123456789", min_size=1, max_size=8), min_size=1,
                max_size=4))
def test_every_concrete_path_matches_its_template(segments):
    template = "/" + "/".join(f"{{p{i}}}" if i % 2 else s for i, s in enumerate(segments))
    path = "/" + "/".join(segments)
    assert RouteTable((template,)).route_of("any", path) == template


def test_transform_sets_route_once():
    table = RouteTable(("/orders/{id}",))
    assert table(_x("/orders/7")).route == "/orders/{id}"
    assert table(_x("/orders/7", route="/known")).route == "/known"  # the capture knew
    assert table(_x("/other")).route is None


def test_recording_stores_routes(start_proxy, services):
    async def ok(request):
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    svc = services.start("shop", app)
    proxy = start_proxy(services=(ServiceSpec("shop", "127.0.0.1", svc.port),),
                        routes=("shop:/orders/{id}",))
    for path in ("/orders/1", "/health"):
        requests.get(f"{svc.url}{path}", proxies={"http": proxy.url}, timeout=10)
    routes = {x.request.path: x.route for x in proxy.exchanges()}
    assert routes == {"/orders/1": "/orders/{id}", "/health": None}
