"""A forward listener and a reverse listener of one tapproxy work together.

A client that honours HTTP_PROXY and calls a service at the port tapproxy fronts it on
sends its request to the forward listener with the reverse listener as the target.
mitmproxy on its own refuses to connect to itself (502 "Request destination unknown").
"""

from __future__ import annotations

import subprocess

import pytest
import requests

from tapproxy.capture.encoding import body_json
from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import TEST_WORKERS, free_port
from tests.proxy.test_clients import echo_app


@pytest.fixture
def echo(services):
    return services.start("echo", echo_app())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_forwarded_request_to_our_own_reverse_listener_is_recorded_once(start_proxy, echo,
                                                                        host):
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("orders", echo.url, Address("127.0.0.1", port)),))
    via = proxy.url_as("checkout")
    r = requests.post(f"http://{host}:{port}/orders?x=1", json={"qty": 2},
                      proxies={"http": via}, timeout=10)
    assert r.status_code == 201, r.text
    seen = r.json()
    assert (seen["method"], seen["path"]) == ("POST", "/orders?x=1")
    # As through the reverse listener itself: the service sees the Host its caller sent.
    assert dict((k.lower(), v) for k, v in seen["headers"])["host"] == f"{host}:{port}"

    [x] = proxy.exchanges()  # once: not again as a request from tapproxy to itself
    assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
    assert (x.callee.name, x.callee.source) == ("orders", "reverse")
    assert x.callee.address == f"127.0.0.1:{echo.port}"
    assert (x.request.path, x.status, body_json(x.request)) == ("/orders?x=1", 201, {"qty": 2})
    assert x.request.url == f"http://{host}:{port}/orders?x=1"  # as the caller wrote it


def test_without_credentials_the_forwarding_process_names_the_caller(start_proxy, echo):
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("orders", echo.url, Address("127.0.0.1", port)),))
    out = subprocess.run(["curl", "-q", "-sS", "--fail", "-x", proxy.url,
                          f"http://127.0.0.1:{port}/stock"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    [x] = proxy.exchanges()
    assert (x.caller.name, x.caller.source, x.callee.name, x.request.path) == (
        "curl", "process", "orders", "/stock")


def test_other_targets_on_the_forward_listener_are_left_alone(start_proxy, echo):
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("orders", echo.url, Address("127.0.0.1", port)),))
    r = requests.get(f"{echo.url}/direct", proxies={"http": proxy.url_as("checkout")},
                     timeout=10)
    assert r.status_code == 200
    [x] = proxy.exchanges()
    if TEST_WORKERS == 1:  # the proxy runs in this process, which it does not name
        assert (x.callee.name, x.callee.source) == ("127.0.0.1", "host")
    else:  # this process serves `echo`, and named itself `checkout` calling it
        assert (x.callee.name, x.callee.source) == ("checkout", "proxy-user")


def test_an_https_tunnel_to_our_own_reverse_listener_reaches_its_upstream(start_proxy, echo):
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("orders", echo.url, Address("127.0.0.1", port)),))
    r = requests.get(f"https://127.0.0.1:{port}/secure", verify=str(proxy.ca_file),
                     proxies={"https": proxy.url_as("checkout")}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/secure"
    [x] = proxy.exchanges()
    assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
    assert (x.callee.name, x.callee.source, x.callee.address) == (
        "orders", "reverse", f"127.0.0.1:{echo.port}")


def test_an_https_upstream_behind_our_reverse_listener_over_http_and_https(start_proxy,
                                                                           services, tmp_path):
    import trustme

    from tests.proxy.test_protocols import server_tls

    ca = trustme.CA()
    ca_file = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    secure = services.start("secure", echo_app(), ssl_context=server_tls(ca))
    port = free_port()
    proxy = start_proxy(upstream_ca=ca_file,
                        reverse=(ReverseSpec("vault", secure.url, Address("127.0.0.1", port)),))
    via = proxy.url_as("checkout")
    for scheme in ("http", "https"):
        r = requests.get(f"{scheme}://127.0.0.1:{port}/{scheme}", verify=str(proxy.ca_file),
                         proxies={scheme: via}, timeout=10)
        assert r.status_code == 200, r.text
    xs = proxy.exchanges()
    # The request as the caller sent it; the callee's address is where it went.
    assert [(x.caller.name, x.callee.name, x.request.scheme, x.request.path) for x in xs] == [
        ("checkout", "vault", "http", "/http"), ("checkout", "vault", "https", "/https")]
    assert {x.callee.address for x in xs} == {f"127.0.0.1:{secure.port}"}
