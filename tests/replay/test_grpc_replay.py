"""A grpcio client against a replayed gRPC service: unary and streaming calls, OK and
errors, with the messages, status, details and trailing metadata recorded."""

# ruff: noqa: F811 - the gRPC fixtures are imported as fixtures, then named as parameters
from __future__ import annotations

import grpc

from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import free_port
from tests.grpc.conftest import (  # noqa: F401 - echo, grpc_ca, start_echo: fixtures
    Outcome,
    _show,
    _trailing,
    bidi_lockstep,
    echo,
    grpc_ca,
    start_echo,
)


def calls(echo, channel: grpc.Channel) -> list[Outcome]:
    """Unary (OK, NOT_FOUND), server streaming (OK, INTERNAL after 2), client streaming
    and bidirectional: what the client saw of each."""
    pb2 = echo.pb2
    stub = echo.pb2_grpc.EchoStub(channel)
    out: list[Outcome] = []

    def unary(method, call, request):
        try:
            resp, c = call.with_call(request, timeout=10)
            out.append(Outcome(method, c.code().name, c.details(), (_show(resp),), _trailing(c)))
        except grpc.RpcError as e:
            out.append(Outcome(method, e.code().name, e.details(), (), _trailing(e)))

    def streaming(method, call, arg):
        got: list[str] = []
        it = call(arg, timeout=10)
        try:
            got.extend(_show(m) for m in it)
        except grpc.RpcError as e:
            out.append(Outcome(method, e.code().name, e.details(), tuple(got), _trailing(e)))
            return
        out.append(Outcome(method, it.code().name, it.details(), tuple(got), _trailing(it)))

    unary("Unary", stub.Unary, pb2.Req(text="hi", numbers=[1, 300]))
    unary("Unary", stub.Unary, pb2.Req(text="ghost", mode="not_found"))
    streaming("ServerStream", stub.ServerStream, pb2.Req(text="s", count=4))
    streaming("ServerStream", stub.ServerStream, pb2.Req(text="s", count=4, mode="abort"))
    unary("ClientStream", stub.ClientStream, iter([pb2.Req(text="a"), pb2.Req(text="b")]))
    streaming("Bidi", stub.Bidi, iter([pb2.Req(text="x"), pb2.Req(text="y")]))
    return out


def test_h2c_grpc_client_gets_the_recorded_calls(echo, start_echo, start_proxy,
                                                 start_replay, tmp_path):
    server = start_echo()
    front = Address("127.0.0.1", free_port())
    proxy = start_proxy(reverse=(ReverseSpec("echo", f"http://{server.target}", front),))
    with grpc.insecure_channel(str(front)) as ch:
        recorded = calls(echo, ch)
        assert bidi_lockstep(echo, ch) == ["M0", "M1", "M2"]
    proxy.stop()  # the replay never connects to the server: it answers on its own
    assert [(o.method, o.code) for o in recorded] == [
        ("Unary", "OK"), ("Unary", "NOT_FOUND"), ("ServerStream", "OK"),
        ("ServerStream", "INTERNAL"), ("ClientStream", "OK"), ("Bidi", "OK")]

    r = start_replay(proxy.capture)
    target = r.url("echo").removeprefix("http://")
    with grpc.insecure_channel(target) as ch:
        assert calls(echo, ch) == recorded
        # Each message waits for the answer to the one before: the recorded answers go
        # out as the recording sent them, before the call ends.
        assert bidi_lockstep(echo, ch) == ["M0", "M1", "M2"]
        # A request the capture does not hold: a gRPC status, its message the miss.
        try:
            echo.pb2_grpc.EchoStub(ch).Unary(echo.pb2.Req(text="ho", numbers=[1, 300]),
                                             timeout=10)
            raise AssertionError("a miss was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNKNOWN
            assert e.details() == "no recorded answer for POST /taptest.Echo/Unary to echo"
    # The log names the nearest call, its message decoded by field number.
    assert r.log[2].split() == ["#1", "POST", "/taptest.Echo/Unary", "method", "✓", "path",
                                "✓", "query", "✓", "body", "✗"]
    assert r.log[3].strip() == 'body message 1: recorded 1: "hi", got 1: "ho"'
    stats = r.stop()
    assert (stats.matched, stats.unmatched, stats.unused) == (7, 1, 0)


def test_tls_grpc_through_the_replay_forward_proxy(echo, start_echo, start_proxy,
                                                   start_replay, grpc_ca, tmp_path, confdir):
    server = start_echo(tls=True)
    ca = tmp_path / "grpc-ca.pem"
    grpc_ca.cert_pem.write_to_path(str(ca))
    proxy = start_proxy(upstream_ca=ca)
    creds = grpc.ssl_channel_credentials(root_certificates=proxy.ca_file.read_bytes())
    with grpc.secure_channel(server.target, creds,
                             options=[("grpc.http_proxy", proxy.url)]) as ch:
        recorded = calls(echo, ch)
    proxy.stop()
    assert recorded[1].code == "NOT_FOUND" and recorded[3].code == "INTERNAL"

    listen = Address("127.0.0.1", free_port())
    r = start_replay(proxy.capture, listen=listen, confdir=confdir)
    with grpc.secure_channel(server.target, creds,
                             options=[("grpc.http_proxy", f"http://{listen}")]) as ch:
        assert calls(echo, ch) == recorded
    stats = r.stop()
    assert (stats.matched, stats.unmatched, stats.unused) == (6, 0, 0)
