"""gRPC through the real proxy: h2c in a CONNECT tunnel, h2c spoken to the forward listener,
h2c to a reverse listener, and TLS. Every call gets exactly what the server sent, and every
call is recorded with its status."""

from __future__ import annotations

import os
import sys

import grpc
import pytest

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port, wait_for
from tests.grpc.conftest import bidi_lockstep, run_calls

# What each call of run_calls ends with (method, status), in order.
EXPECTED = [
    ("Unary", "OK"),
    ("Unary", "NOT_FOUND"),
    ("Unary", "DEADLINE_EXCEEDED"),
    ("ServerStream", "OK"),
    ("ServerStream", "INTERNAL"),
    ("ClientStream", "OK"),
    ("Bidi", "OK"),
]


def _channel(mode: str, server, proxy) -> grpc.Channel:
    via = [("grpc.http_proxy", proxy.url_as("echo-client"))]
    if mode == "connect":
        return grpc.insecure_channel(server.target, options=via)
    if mode == "forward":  # h2c straight to the forward listener, target in :authority
        return grpc.insecure_channel(str(proxy.options.listen),
                                     options=[("grpc.default_authority", server.target)])
    if mode == "reverse":
        return grpc.insecure_channel(str(proxy.options.reverse[0].listen))
    assert mode == "tls"
    creds = grpc.ssl_channel_credentials(root_certificates=proxy.ca_file.read_bytes())
    return grpc.secure_channel(server.target, creds, options=via)


def _start(mode: str, start_echo, start_proxy, grpc_ca, tmp_path):
    server = start_echo(tls=mode == "tls")
    kw = {}
    if mode == "reverse":
        kw["reverse"] = (ReverseSpec("echo", f"http://{server.target}",
                                     Address("127.0.0.1", free_port())),)
    if mode == "tls":
        ca = tmp_path / "grpc-ca.pem"
        grpc_ca.cert_pem.write_to_path(str(ca))
        kw["upstream_ca"] = ca
    return server, start_proxy(**kw)


def _direct(echo, server, grpc_ca):
    if server.tls:
        creds = grpc.ssl_channel_credentials(root_certificates=grpc_ca.cert_pem.bytes())
        return grpc.secure_channel(server.target, creds)
    return grpc.insecure_channel(server.target)


@pytest.mark.parametrize("mode", ["connect", "forward", "reverse", "tls"])
def test_every_call_passes_unchanged_and_is_recorded(mode, echo, start_echo, start_proxy,
                                                     grpc_ca, tmp_path):
    server, proxy = _start(mode, start_echo, start_proxy, grpc_ca, tmp_path)
    with _direct(echo, server, grpc_ca) as ch:
        direct = run_calls(echo, ch)
    with _channel(mode, server, proxy) as ch:
        through = run_calls(echo, ch)
        lockstep = bidi_lockstep(echo, ch)

    assert [(o.method, o.code) for o in direct] == EXPECTED
    assert through == direct  # messages, status, details, trailing metadata
    assert lockstep == ["M0", "M1", "M2"]

    xs = wait_for(lambda: [x for x in proxy.exchanges() if "/taptest.Echo/" in x.request.path]
                  if len(proxy.exchanges()) >= len(EXPECTED) + 1 else None,
                  what="every call recorded")
    recorded = [(x.request.path.rsplit("/", 1)[1],
                 x.grpc_status_name or (x.error.kind if x.error else "?")) for x in xs]
    # The deadline: the client cancels the stream, unless the server's own deadline
    # (from grpc-timeout) answered first.
    assert recorded[2] in (("Unary", "client_closed"), ("Unary", "DEADLINE_EXCEEDED"))
    recorded[2] = ("Unary", "DEADLINE_EXCEEDED")
    assert recorded == [*EXPECTED, ("Bidi", "OK")]
    assert [x.failed for x in xs] == [code != "OK" for _, code in recorded]
    assert proxy.handle.recorder.errors == 3  # the live count uses the same notion
    assert all(x.request.http_version == "HTTP/2.0" for x in xs)
    by_direction = [(sum(m.from_client for m in x.grpc_messages),
                     sum(not m.from_client for m in x.grpc_messages)) for x in xs]
    assert by_direction == [(1, 1), (1, 0), (1, 0), (1, 4), (1, 2), (3, 1), (2, 2), (3, 3)]
    # Without credentials the caller is named by its process: this one.
    python = os.path.basename(os.path.realpath(sys.executable))
    expected_caller = python if mode in ("reverse", "forward") else "echo-client"
    assert {x.caller.name for x in xs} == {expected_caller}


def test_a_stream_longer_than_max_body_passes_whole_and_is_kept_in_part(echo, start_echo,
                                                                       start_proxy):
    server = start_echo()
    proxy = start_proxy(max_body=100)
    with grpc.insecure_channel(server.target,
                               options=[("grpc.http_proxy", proxy.url)]) as ch:
        got = [m.text for m in echo.pb2_grpc.EchoStub(ch).ServerStream(
            echo.pb2.Req(text="part", count=30), timeout=20)]
    assert got == [f"part {i}" for i in range(30)]  # every message reached the client
    [x] = wait_for(lambda: proxy.exchanges(), what="the call recorded")
    r = x.response
    assert r.body_truncated and len(r.body) == 100 and r.body_size > 100
    assert x.grpc_status_name == "OK"
    received = [m for m in x.grpc_messages if not m.from_client]
    assert 0 < len(received) < 30  # only the messages whole within the kept bytes
    assert [m.data for m in received] == [
        echo.pb2.Resp(text=f"part {i}", index=i).SerializeToString()
        for i in range(len(received))]
