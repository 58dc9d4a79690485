"""A real grpcio Echo service (tests/grpc/echo.proto) and clients for the gRPC tests.

Stubs and a descriptor set are generated once per session with grpc_tools.protoc.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trustme

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Stubs:
    pb2: ModuleType
    pb2_grpc: ModuleType
    descriptor_set: Path


@pytest.fixture(scope="session")
def echo(tmp_path_factory) -> Stubs:
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("echo_stubs")
    descriptor = out / "echo.desc"
    rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", f"--grpc_python_out={out}",
                      f"--descriptor_set_out={descriptor}", str(HERE / "echo.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, str(out))
    try:
        return Stubs(importlib.import_module("echo_pb2"),
                     importlib.import_module("echo_pb2_grpc"), descriptor)
    finally:
        sys.path.remove(str(out))


def servicer(echo: Stubs):
    pb2 = echo.pb2

    class Echo(echo.pb2_grpc.EchoServicer):
        def Unary(self, request, context):
            if request.mode == "not_found":
                context.abort(grpc.StatusCode.NOT_FOUND, f"no echo for {request.text}")
            if request.mode == "slow":  # until the caller's deadline cancels the call
                end = time.monotonic() + 10
                while context.is_active() and time.monotonic() < end:
                    time.sleep(0.02)
                return pb2.Resp(text="too late")
            context.set_trailing_metadata((("x-echo-trailer", "t1"),))
            return pb2.Resp(text=f"echo {request.text}",
                            inner=pb2.Inner(flag=True, ratio=0.5))

        def ServerStream(self, request, context):
            for i in range(request.count):
                if request.mode == "abort" and i == 2:
                    context.abort(grpc.StatusCode.INTERNAL, "broke after 2")
                yield pb2.Resp(text=f"{request.text} {i}", index=i)

        def ClientStream(self, request_iterator, context):
            return pb2.Resp(text="+".join(r.text for r in request_iterator))

        def Bidi(self, request_iterator, context):
            for i, r in enumerate(request_iterator):
                yield pb2.Resp(text=r.text.upper(), index=i)

    return Echo()


@dataclass
class EchoServer:
    port: int
    tls: bool

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def grpc_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def start_echo(echo: Stubs, grpc_ca: trustme.CA) -> Iterator:
    """start_echo(tls=False) → a running Echo server on a free loopback port."""
    servers = []

    def start(tls: bool = False) -> EchoServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        echo.pb2_grpc.add_EchoServicer_to_server(servicer(echo), server)
        if tls:
            cert = grpc_ca.issue_cert("127.0.0.1", "localhost")
            creds = grpc.ssl_server_credentials(
                [(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())])
            port = server.add_secure_port("127.0.0.1:0", creds)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return EchoServer(port, tls)

    yield start
    for s in servers:
        s.stop(0)


@dataclass(frozen=True)
class Outcome:
    """What a client saw of one call: the messages, then the status and its details."""

    method: str
    code: str
    details: str | None
    messages: tuple[str, ...]
    trailing: tuple[tuple[str, str], ...] = ()


def run_calls(echo: Stubs, channel: grpc.Channel) -> list[Outcome]:
    """Every kind of call the tests check, in order, each with what the client saw."""
    pb2 = echo.pb2
    stub = echo.pb2_grpc.EchoStub(channel)
    outcomes: list[Outcome] = []

    def unary(method, call, request, **kw):
        try:
            resp, c = call.with_call(request, **kw)
            outcomes.append(Outcome(method, c.code().name, c.details(), (_show(resp),),
                                    _trailing(c)))
        except grpc.RpcError as e:
            outcomes.append(Outcome(method, e.code().name, e.details(), (), _trailing(e)))

    def streaming(method, call, *args, **kw):
        got: list[str] = []
        it = call(*args, **kw)
        try:
            for m in it:
                got.append(_show(m))
        except grpc.RpcError as e:
            outcomes.append(Outcome(method, e.code().name, e.details(), tuple(got),
                                    _trailing(e)))
            return
        outcomes.append(Outcome(method, it.code().name, it.details(), tuple(got), _trailing(it)))

    unary("Unary", stub.Unary, request=pb2.Req(text="hi", numbers=[1, 300]))
    unary("Unary", stub.Unary, request=pb2.Req(text="ghost", mode="not_found"))
    unary("Unary", stub.Unary, request=pb2.Req(text="zzz", mode="slow"), timeout=0.5)
    streaming("ServerStream", stub.ServerStream, pb2.Req(text="s", count=4))
    streaming("ServerStream", stub.ServerStream, pb2.Req(text="s", count=4, mode="abort"))
    unary("ClientStream", stub.ClientStream,
          request=iter([pb2.Req(text="a"), pb2.Req(text="b"), pb2.Req(text="c")]))
    streaming("Bidi", stub.Bidi, iter([pb2.Req(text="x"), pb2.Req(text="y")]))
    return outcomes


def bidi_lockstep(echo: Stubs, channel: grpc.Channel, n: int = 3) -> list[str]:
    """A bidi call that sends its next message only after the answer to the previous one:
    it completes only if both directions stream through the proxy."""
    import queue

    pb2 = echo.pb2
    stub = echo.pb2_grpc.EchoStub(channel)
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    outbox.put(pb2.Req(text="m0"))
    got = []
    for resp in stub.Bidi(requests(), timeout=20):
        got.append(resp.text)
        outbox.put(pb2.Req(text=f"m{len(got)}") if len(got) < n else None)
    return got


def _show(m) -> str:
    return str(m).replace("\n", " ").strip()


def _trailing(c) -> tuple[tuple[str, str], ...]:
    md = c.trailing_metadata() or ()
    return tuple((k, v) for k, v in md if not k.startswith("grpc-"))
