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
from tapproxy.supervisor.options import ServiceSpec


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


@pytest.mark.parametrize(("template", "path", "params"), [
    ("/orders/{orderId}", "/orders/42", {"orderId": "42"}),
    ("/orders/{order-id}/items/{item.no}", "/orders/a/items/7?x=1",
     {"order-id": "a", "item.no": "7"}),
    ("/files/{name}.json", "/files/report.json", {"name": "report"}),
    ("/health", "/health/", {}),
])
def test_match_gives_the_route_and_its_parameters(template, path, params):
    route, values = RouteTable((template,)).match("shop", path)
    assert (route.template, route.params, values) == (template, tuple(params), params)
    assert route.match(path) == params


def test_routes_carry_values_and_the_most_specific_wins():
    table = RouteTable([parse_route("/orders/{id}", value="any order"),
                        parse_route("shop:/orders/{id}", value="shop's order"),
                        parse_route("/orders/new", value="new")])
    assert table.match("shop", "/orders/new")[0].value == "shop's order"  # service first
    assert table.match("other", "/orders/new")[0].value == "new"  # then literal text
    assert table.match("other", "/orders/9")[0].value == "any order"
    assert table.match("other", "/nothing") is None
    assert RouteTable().match("shop", "/orders/1") is None


_TEMPLATES = st.lists(st.lists(st.sampled_from(["a", "b", "{p}", "{q}", "a.b"]), min_size=1,
                               max_size=3).map(lambda s: "/" + "/".join(s)),
                      min_size=1, max_size=6)
_SERVICES = st.sampled_from(["", "shop:", "other:"])


@given(st.lists(st.tuples(_SERVICES, _TEMPLATES.map(lambda t: t[0])), min_size=1, max_size=6),
       st.lists(st.sampled_from(["a", "b", "a.b", "x"]), min_size=1, max_size=3))
def test_match_is_the_first_route_in_specificity_order_that_fits(routes, segments):
    specs = [s + t for s, t in routes]
    table = RouteTable(specs)
    path = "/" + "/".join(segments)
    expected = next((r for r in table if r.service in (None, "shop") and r.match(path)
                     is not None), None)
    found = table.match("shop", path)
    assert (found[0] if found else None) is expected
    if expected is not None:
        assert found[1] == expected.match(path)
