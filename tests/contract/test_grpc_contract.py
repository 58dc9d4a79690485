"""gRPC contracts against a real grpcio Echo service (tests/grpc/echo.proto) recorded
through the real proxy: the service's own .proto and its descriptor set pass; a drifted
contract (a field's type, a field, a method, a stream) names each difference."""

from __future__ import annotations

import dataclasses
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from tapproxy.capture import Exchange, GrpcMessage
from tapproxy.contract import check_records
from tapproxy.contract.load import detect_kind, load_contract
from tapproxy.errors import ContractError
from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.options import Address, RecordOptions
from tests.conftest import LoopThread, Proxy, free_port, wait_for
from tests.grpc import conftest as grpc_conftest
from tests.grpc.conftest import HERE, Stubs, servicer
from tests.spans.build import T0, exchange

echo = grpc_conftest.echo  # the fixture compiling echo.proto's stubs, once per session

ECHO_PROTO = HERE / "echo.proto"
# The calls recorded, one exchange each: (method, request messages, response messages).
CALLS = [("Unary", 1, 1), ("ServerStream", 1, 3), ("ClientStream", 2, 1), ("Bidi", 2, 2),
         ("Unary", 1, 1)]  # the last one gzip-compressed both ways


def _zipping(echo: Stubs):
    class Zipping(type(servicer(echo))):
        def Unary(self, request, context):
            if request.mode == "zip":  # this answer compressed, the others not
                context.set_compression(grpc.Compression.Gzip)
            return super().Unary(request, context)

    return Zipping()


def _run_calls(echo: Stubs, channel: grpc.Channel) -> None:
    pb2, stub = echo.pb2, echo.pb2_grpc.EchoStub(channel)
    stub.Unary(pb2.Req(text="hi", mode="plain", numbers=[1, 300]), timeout=20)
    assert len(list(stub.ServerStream(pb2.Req(text="s", count=3), timeout=20))) == 3
    stub.ClientStream(iter([pb2.Req(text="a"), pb2.Req(text="b")]), timeout=20)
    assert len(list(stub.Bidi(iter([pb2.Req(text="x"), pb2.Req(text="y")]),
                              timeout=20))) == 2
    # grpc sends a message uncompressed where gzip would not make it smaller: repeat it.
    stub.Unary(pb2.Req(text="zipped " * 40, mode="zip"), compression=grpc.Compression.Gzip,
               timeout=20)


@pytest.fixture(scope="module")
def recorded(echo, confdir, tmp_path_factory) -> list[Exchange]:
    """The calls of CALLS made through the real proxy, as recorded (once per module)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    echo.pb2_grpc.add_EchoServicer_to_server(_zipping(echo), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    opts = RecordOptions(output=tmp_path_factory.mktemp("grpc_contract") / "run.tap",
                         listen=Address("127.0.0.1", free_port()),
                         control=Address("127.0.0.1", free_port()), confdir=confdir)
    loop = LoopThread()
    proxy = Proxy(opts, RecordingProxy(opts), loop)
    loop.run(proxy.handle.start())
    try:
        via = [("grpc.http_proxy", proxy.url_as("echo-client"))]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=via) as channel:
            _run_calls(echo, channel)
        return wait_for(lambda: xs if len(xs := proxy.exchanges()) >= len(CALLS) else None,
                        what="every call recorded")
    finally:
        proxy.stop()
        loop.close()
        server.stop(0)


def _drifted(tmp_path: Path, *edits: tuple[str, str], name: str = "echo.proto") -> Path:
    text = ECHO_PROTO.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    out = tmp_path / name
    out.write_text(text)
    return out


def _descriptor_set(proto: Path, *, source_info: bool = False) -> Path:
    """`proto` compiled by the real protoc, as a user's build would."""
    from grpc_tools import protoc

    out = proto.with_suffix(".desc")
    args = ["protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", str(proto)]
    assert protoc.main(args + (["--include_source_info"] if source_info else [])) == 0
    return out


def _found(result) -> list[tuple[str, str | None, str, str]]:
    return sorted((m.kind, m.item, m.where, m.side) for m in result.mismatches)


def test_the_calls_are_recorded_as_made_some_compressed(recorded):
    assert [(x.grpc_method[1], sum(m.from_client for m in x.grpc_messages),
             sum(not m.from_client for m in x.grpc_messages)) for x in recorded] == CALLS
    zipped = recorded[-1].grpc_messages
    assert [m.compressed for m in zipped] == [True, True]  # so the check must inflate them


@pytest.mark.parametrize("form", ["descriptor", "proto"])
def test_the_service_own_contract_passes_every_call(form, recorded, tmp_path):
    proto = _drifted(tmp_path)  # unchanged
    contract = load_contract(_descriptor_set(proto) if form == "descriptor" else proto)
    assert contract.kind == "grpc"
    result = check_records(recorded, [contract])
    assert result.mismatches == []
    assert result.checked == len(CALLS)
    assert {item: n for (_, item), n in result.covered.items()} == {
        "taptest.Echo/Unary": 2, "taptest.Echo/ServerStream": 1,
        "taptest.Echo/ClientStream": 1, "taptest.Echo/Bidi": 1}


def test_items_are_the_methods_at_their_rpc_lines(tmp_path):
    proto = _drifted(tmp_path)
    lines = proto.read_text().splitlines()
    items = load_contract(proto).items()
    assert [i.id for i in items] == ["taptest.Echo/Unary", "taptest.Echo/ServerStream",
                                     "taptest.Echo/ClientStream", "taptest.Echo/Bidi"]
    for item in items:
        assert item.location.file == proto
        assert lines[item.location.line - 1].strip().startswith(
            f"rpc {item.id.rpartition('/')[2]}(")
    # A set without source info has nothing finer than its own path to point at.
    bare = _descriptor_set(proto)
    assert {str(i.location) for i in load_contract(bare).items()} == {str(bare)}


DRIFTS = {
    "a field's type changed": (
        [("int32 count = 2;", "string count = 2;")],
        [("grpc-undecodable", "taptest.Echo/ServerStream", "field 2", "request")]),
    "a field removed": (  # both Unary calls set it; the second one's request is gzipped
        [("string mode = 3;", "")],
        [("grpc-unknown-field", "taptest.Echo/Unary", "field 3", "request")] * 2),
    "a nested field's type changed": (  # in both Unary answers, one gzipped
        [("bool flag = 1;", "string flag = 1;")],
        [("grpc-undecodable", "taptest.Echo/Unary", "field 3.1", "response")] * 2),
    "a method removed": (
        [("  rpc ClientStream(stream Req) returns (Resp);\n", "")],
        [("grpc-unknown-method", None, "", "request")]),
    "methods made unary": (
        [("ServerStream(Req) returns (stream Resp)", "ServerStream(Req) returns (Resp)"),
         ("ClientStream(stream Req)", "ClientStream(Req)")],
        [("grpc-streaming", "taptest.Echo/ClientStream", "", "request"),
         ("grpc-streaming", "taptest.Echo/ServerStream", "", "response")]),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_a_drifted_descriptor_set_names_each_difference(drift, recorded, tmp_path):
    edits, expected = DRIFTS[drift]
    contract = load_contract(_descriptor_set(_drifted(tmp_path, *edits)))
    result = check_records(recorded, [contract])
    assert _found(result) == sorted(expected)
    for m in result.mismatches:
        assert m.exchange_id in {x.id for x in recorded}
        assert m.caller == "echo-client" and m.callee == recorded[0].callee.name


def test_a_mismatch_says_expected_and_actual_and_points_at_the_proto_line(recorded,
                                                                          tmp_path):
    proto = _drifted(tmp_path, ("bool flag = 1;", "string flag = 1;"))
    result = check_records(recorded, [load_contract(proto)])
    first = result.mismatches[0]
    assert first.message == ("response message 1 (taptest.Resp), field 3.1 (inner.flag): "
                             "expected string (length-delimited), got varint (1)")
    assert (first.expected, first.actual) == ("string (length-delimited)", "varint (1)")
    line = proto.read_text().splitlines().index("  string flag = 1;") + 1
    assert (first.contract.file, first.contract.line) == (proto, line)
    assert "3 {" in first.excerpt and "  1: 1" in first.excerpt  # decode_raw's view


def test_an_unknown_field_shows_its_value(recorded, tmp_path):
    proto = _drifted(tmp_path, ("string mode = 3;", ""))
    [plain, zipped] = check_records(recorded, [load_contract(proto)]).mismatches
    assert plain.message == ("request message 1 (taptest.Req), field 3: taptest.Req "
                             "declares no field 3")
    assert (plain.actual, zipped.actual) == ('"plain"', '"zip"')  # the gzip one inflated
    assert '3: "plain"' in plain.excerpt


def test_a_contract_bound_to_a_service_judges_only_its_calls(recorded, tmp_path):
    desc = _descriptor_set(_drifted(tmp_path, ("  rpc Bidi(stream Req) returns (stream Resp);"
                                               "\n", "")))
    callee = recorded[0].callee.name
    bound = check_records(recorded, [load_contract(f"{callee}={desc}")])
    assert Counter(m.kind for m in bound.mismatches) == {"grpc-unknown-method": 1}
    [m] = bound.mismatches
    assert (m.item, m.actual) == (None, "/taptest.Echo/Bidi")
    assert m.expected == "one of Unary, ServerStream, ClientStream"
    other = check_records(recorded, [load_contract(f"elsewhere={desc}")])
    assert (other.checked, other.mismatches) == (0, [])


def test_a_contract_of_another_service_leaves_these_calls_alone(recorded, tmp_path):
    proto = _drifted(tmp_path, ("package taptest;", "package shop;"))
    result = check_records(recorded, [load_contract(proto)])
    assert (result.checked, result.mismatches) == (0, [])
    assert sum(result.undocumented.values()) == len(CALLS)


def test_a_broken_proto_is_one_line_naming_file_line_and_column(tmp_path):
    proto = _drifted(tmp_path, ("int32 count = 2;", "int32 count = 2"))
    with pytest.raises(ContractError) as e:
        load_contract(proto)
    line = 1 + proto.read_text().splitlines().index("  string mode = 3;   // \"\", "
                                                    "\"not_found\", \"abort\" (INTERNAL "
                                                    "after 2 messages), \"slow\"")
    assert str(e.value) == f'{proto}:{line}:3: Expected ";".'


def test_a_proto_importing_a_missing_file_names_the_import(tmp_path):
    proto = _drifted(tmp_path, ("package taptest;", 'package taptest;\nimport "gone.proto";'))
    line = 1 + proto.read_text().splitlines().index('import "gone.proto";')
    with pytest.raises(ContractError) as e:
        load_contract(proto)
    assert str(e.value) == f'{proto}:{line}:1: Import "gone.proto" was not found or had errors.'



def test_a_short_descriptor_set_that_is_valid_utf8_is_still_a_descriptor_set(tmp_path):
    f = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3")
    f.message_type.add(name="M").field.add(name="a", number=1, type=9, label=1)
    f.service.add(name="S").method.add(name="Get", input_type=".t.M", output_type=".t.M")
    raw = descriptor_pb2.FileDescriptorSet(file=[f]).SerializeToString()
    raw.decode("utf-8")  # it is text too
    path = tmp_path / "t.desc"
    path.write_bytes(raw)
    assert detect_kind(path, raw) == ("descriptor", None)
    assert [i.id for i in load_contract(path).items()] == ["t.S/Get"]


def test_a_file_that_parses_as_protobuf_but_describes_nothing_is_not_one(tmp_path):
    path = tmp_path / "x.desc"
    path.write_bytes(b"\x0a\x00")  # one empty FileDescriptorProto: no name, no file
    with pytest.raises(ContractError) as e:
        load_contract(path)
    assert str(e.value) == (f"{path}: not a protobuf descriptor set "
                            "(protoc --descriptor_set_out=FILE --include_imports)")


def test_a_message_compressed_with_an_unknown_codec_is_reported_not_checked(tmp_path):
    """grpcio speaks only gzip and deflate, so the snappy call is built by hand."""
    x = exchange("g1", "cli", "echo", 0, 10, method="POST", path="/taptest.Echo/Unary",
                 headers=[("content-type", "application/grpc"), ("grpc-encoding", "snappy")])
    x = dataclasses.replace(x, grpc_messages=(GrpcMessage(True, True, T0, b"\x05\x10hi"),))
    result = check_records([x], [load_contract(ECHO_PROTO)])
    [m] = result.mismatches
    assert (m.kind, m.item, m.side) == ("grpc-undecodable", "taptest.Echo/Unary", "request")
    assert m.message == "request message 1: not checked, compressed with snappy"


def test_a_proto_contract_is_the_services_of_that_file_not_of_its_imports(tmp_path):
    (tmp_path / "common.proto").write_text(
        'syntax = "proto3";\npackage common;\nmessage Ping {}\n'
        "service Health {\n  rpc Check(Ping) returns (Ping);\n}\n")
    proto = _drifted(tmp_path, ("package taptest;", 'package taptest;\nimport "common.proto";'))
    assert [i.id for i in load_contract(proto).items()] == [
        "taptest.Echo/Unary", "taptest.Echo/ServerStream", "taptest.Echo/ClientStream",
        "taptest.Echo/Bidi"]
    assert [i.id for i in load_contract(tmp_path / "common.proto").items()] == [
        "common.Health/Check"]


def test_an_error_in_an_imported_proto_names_that_file_as_the_user_would(tmp_path,
                                                                         monkeypatch):
    (tmp_path / "protos").mkdir()
    (tmp_path / "protos" / "common.proto").write_text('syntax = "proto3";\nmessage {\n')
    _drifted(tmp_path / "protos", ("package taptest;",
                                   'package taptest;\nimport "common.proto";'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ContractError) as e:
        load_contract("protos/echo.proto")
    assert str(e.value) == "protos/common.proto:2:9: Expected message name."


def test_a_descriptor_set_without_its_imports_says_how_to_build_it(tmp_path):
    (tmp_path / "common.proto").write_text('syntax = "proto3";\npackage common;\n'
                                           "message Ping {}\n")
    proto = _drifted(tmp_path, ("package taptest;", 'package taptest;\nimport "common.proto";'),
                     ("Inner inner = 3;", "common.Ping inner = 3;"))
    desc = _descriptor_set(proto)  # no --include_imports
    with pytest.raises(ContractError) as e:
        load_contract(desc)
    message = str(e.value)
    assert message.startswith(f"{desc}: not a usable descriptor set: ")
    assert message.endswith("(build it with protoc --include_imports)")
    assert "\n" not in message


def test_a_descriptor_set_without_a_service_is_no_grpc_contract(tmp_path):
    proto = tmp_path / "plain.proto"
    proto.write_text('syntax = "proto3";\nmessage Ping {}\n')
    desc = _descriptor_set(proto)
    with pytest.raises(ContractError) as e:
        load_contract(desc)
    assert str(e.value) == (f"{desc}: declares no gRPC service method (no `service` with an "
                            "`rpc`)")
