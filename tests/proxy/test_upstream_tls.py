"""HTTPS to an upstream that speaks plain HTTP and says nothing to a TLS hello.

A server that waits for the end of a request head before answering (h11 and many
hand-written servers) never answers a ClientHello. The request is recorded as what it
is, an upstream TLS failure, and the client gets a 502, instead of both waiting for the
idle timeout and the capture blaming the client's TLS. Real clients (curl, requests)
against the real embedded proxy and a raw-socket server.
"""

from __future__ import annotations

import socket
import subprocess

import pytest
import requests

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port


def plain_http_waiting_for_a_head(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")


@pytest.fixture
def silent(tcp_server):
    return tcp_server(plain_http_waiting_for_a_head)


def _only_upstream_tls_failure(proxy, path: str) -> None:
    [x] = proxy.exchanges()
    assert (x.request.method, x.request.path, x.response) == ("GET", path, None)
    assert x.error.kind == "tls", x.error
    assert "did not answer it within 2 s" in x.error.message


def test_https_through_the_forward_proxy(start_proxy, silent):
    proxy = start_proxy(idle_timeout=4)  # 2 s of silence is the upstream's fault
    done = subprocess.run(["curl", "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                           "--cacert", str(proxy.ca_file), "-x", proxy.url,
                           f"https://127.0.0.1:{silent.port}/curl"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "502", done.stderr
    _only_upstream_tls_failure(proxy, "/curl")


@pytest.mark.parametrize("client_scheme", ["http", "https"])
def test_a_reverse_listener_with_an_https_upstream(start_proxy, silent, client_scheme):
    port = free_port()
    proxy = start_proxy(idle_timeout=4, reverse=(
        ReverseSpec("plain", f"https://127.0.0.1:{silent.port}", Address("127.0.0.1", port)),))
    r = requests.get(f"{client_scheme}://127.0.0.1:{port}/rev", verify=str(proxy.ca_file),
                     timeout=60)
    assert r.status_code == 502
    _only_upstream_tls_failure(proxy, "/rev")
