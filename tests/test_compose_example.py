"""The compose example's pieces, run here without Docker: its tapproxy command line, and
its uninstrumented `orders` service naming itself through HTTP_PROXY (aiohttp trust_env)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import requests
from aiohttp import web
from ruamel.yaml import YAML

from tapproxy.errors import TapproxyError
from tests.conftest import ROOT, free_port, wait_for

COMPOSE = ROOT / "compose" / "docker-compose.yml"


def _parse_record(args: list[str]) -> dict:
    """`tapproxy record ARGS` through the CLI's own parser (click, as typer builds it),
    without running it; then the values through the parsers the command applies."""
    import typer

    from tapproxy.cli import _commands
    from tapproxy.cli.app import app

    _commands()  # registers every command on the app
    from tapproxy.supervisor.options import parse_address, parse_listen

    group = typer.main.get_command(app)
    record = group.get_command(group.context_class(group), "record")
    assert record is not None
    params = record.make_context("record", list(args)).params
    unnamed, listeners = parse_listen(params["listen"] or ())
    return {"output": str(params["output"]), "listen": str(unnamed), "listeners": listeners,
            "control": str(parse_address(params["control"], "--control")),
            "confdir": str(params["confdir"])}


def test_compose_record_command_is_accepted_by_the_cli():
    spec = YAML(typ="safe").load(COMPOSE.read_text())
    args = shlex.split(spec["services"]["tapproxy"]["command"])
    assert args[0] == "record"
    assert _parse_record(args[1:]) == {
        "output": "/captures/run.tap", "listen": "0.0.0.0:8080", "listeners": (),
        "control": "0.0.0.0:8081", "confdir": "/ca"}


@pytest.mark.parametrize("mistake", [
    ("--listen", "--lisen"),  # an option the command does not have
    ("0.0.0.0:8081", "0.0.0.0:80x1"),  # a value its parser refuses
    ("-o /captures/run.tap", "-o"),  # a required option without its value
])
def test_a_mistyped_compose_command_would_be_caught(mistake):
    spec = YAML(typ="safe").load(COMPOSE.read_text())
    command = spec["services"]["tapproxy"]["command"].replace(*mistake)
    # typer raises its own copy of click's usage errors (see tapproxy.cli.app.main).
    with pytest.raises(Exception) as e:
        _parse_record(shlex.split(command)[1:])
    assert isinstance(e.value, TapproxyError) or type(e.value).__name__ in (
        "NoSuchOption", "UsageError", "BadOptionUsage", "MissingParameter"), e.value


def test_orders_service_calls_through_the_proxy_as_itself(proxy, services):
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    inventory = services.start("inventory", app)
    port = free_port()
    env = proxy.env(caller="orders")
    env.update(HOST="127.0.0.1", PORT=str(port), INVENTORY_URL=inventory.url)
    orders = subprocess.Popen([sys.executable, str(ROOT / "compose" / "orders.py")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening():
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5, proxies={"http": None})
            except requests.ConnectionError:
                return False
            return True

        wait_for(listening, what="orders service")
        r = requests.post(f"http://127.0.0.1:{port}/orders/503", timeout=10,
                          proxies={"http": None})
        assert r.status_code == 502 and r.json()["inventory_status"] == 503
    finally:
        orders.terminate()
        orders.wait(10)
    [x] = proxy.exchanges()
    assert (x.caller.name, x.callee.address, x.status) == (
        "orders", f"127.0.0.1:{inventory.port}", 503)
