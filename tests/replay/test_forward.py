"""The replay's forward proxy: clients with HTTP_PROXY/HTTPS_PROXY get recorded answers."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import requests
import trustme

from tapproxy.proxy.certs import env_exports
from tapproxy.supervisor.options import Address
from tests.conftest import free_port
from tests.proxy.test_protocols import server_tls
from tests.replay.conftest import orders_app


@pytest.fixture(scope="module")
def upstream_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_pem(upstream_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "upstream-ca.pem"
    upstream_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def recorded(start_proxy, services, upstream_ca, ca_pem, tmp_path):
    """Plain and TLS orders services called through the recording forward proxy with
    curl; returns (capture, plain URL, TLS URL), both services gone."""
    plain = services.start("orders", orders_app())
    secure = services.start("vault", orders_app(), ssl_context=server_tls(upstream_ca))
    proxy = start_proxy(upstream_ca=ca_pem)
    env = proxy.env(caller="tests")
    for url in (plain.url, secure.url):
        subprocess.run(["curl", "-sS", "-X", "POST", "-H", "content-type: application/json",
                        "--data", '{"sku": "tea"}', f"{url}/orders"], env=env, check=True,
                       capture_output=True)
        subprocess.run(["curl", "-sS", f"{url}/orders/1"], env=env, check=True,
                       capture_output=True)
    proxy.stop()
    services.stop_all()
    return proxy.capture, plain.url, secure.url


def test_clients_through_http_proxy_get_recorded_answers(recorded, start_replay, confdir):
    capture, plain, secure = recorded
    listen = Address("127.0.0.1", free_port())
    r = start_replay(capture, listen=listen, confdir=confdir)
    env = env_exports(listen, confdir, "tests")
    proxies = {"http": env["HTTP_PROXY"], "https": env["HTTPS_PROXY"]}

    ca = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    with httpx.Client(proxy=env["HTTP_PROXY"], verify=ca) as c:
        assert c.post(f"{plain}/orders", json={"sku": "tea"}).status_code == 201
        got = c.get(f"{secure}/orders/1")  # HTTPS, through the same CA as `record`
        assert got.status_code == 200 and got.json()["data"] == {"id": 1, "sku": "tea"}
    s = requests.Session()
    s.proxies = proxies
    assert s.get(f"{plain}/orders/1", verify=env["REQUESTS_CA_BUNDLE"]).json()["data"] == {
        "id": 1, "sku": "tea"}
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "content-type: application/json",
                          "--data", '{"sku":"tea"}', f"{secure}/orders"],
                         env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout)["data"] == {"id": 1, "sku": "tea"}
    miss = requests.get(f"{plain}/orders/2", proxies=proxies)
    assert miss.status_code == 502
    assert miss.text.startswith("no recorded answer for GET /orders/2 to 127.0.0.1\n")
    stats = r.stop()
    assert (stats.matched, stats.unmatched, stats.unused) == (4, 1, 0)
