"""--proto-descriptor: a descriptor set that lacks the shown call's method says so (one
warning line), and a descriptor file is read only up to a size (64 MiB), so /dev/zero
is one error line, not gigabytes of memory."""

from __future__ import annotations

import dataclasses
import resource
import subprocess

from google.protobuf import descriptor_pb2

from tapproxy.capture import GrpcMessage
from tests.conftest import TAPPROXY, run_cli
from tests.spans.build import T0, exchange, write_capture

HI = b"\x0a\x02hi"  # field 1, the string "hi"


def grpc_capture(path):
    x = exchange("g1", "cli", "echo", 0, 10, method="POST", path="/taptest.Echo/Unary",
                 headers=[("content-type", "application/grpc")],
                 request_body=b"\x00" + len(HI).to_bytes(4, "big") + HI)
    x = dataclasses.replace(x, grpc_messages=(GrpcMessage(True, False, T0, HI),))
    return write_capture(path, [x])


def descriptor_set(path, package: str, service: str, method: str):
    f = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package,
                                           syntax="proto3")
    f.message_type.add(name="Text").field.add(name="text", number=1, type=9, label=1)
    f.service.add(name=service).method.add(name=method, input_type=f".{package}.Text",
                                           output_type=f".{package}.Text")
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[f]).SerializeToString())
    return path


def test_a_descriptor_that_describes_the_method_decodes_by_name_without_warning(tmp_path):
    capture = grpc_capture(tmp_path / "run.tap")
    desc = descriptor_set(tmp_path / "echo.desc", "taptest", "Echo", "Unary")
    out = run_cli("show", capture, "--exchange", "1", "--proto-descriptor", desc)
    assert out.returncode == 0, out.stderr
    assert 'text: "hi"' in out.stdout and out.stderr == ""


def test_a_descriptor_of_another_service_says_which_method_it_lacks(tmp_path):
    capture = grpc_capture(tmp_path / "run.tap")
    other = descriptor_set(tmp_path / "other.desc", "shop", "Orders", "Place")
    out = run_cli("show", capture, "--exchange", "1", "--proto-descriptor", other)
    assert out.returncode == 0, out.stderr
    assert '1: "hi"' in out.stdout  # by field number, as without a descriptor
    assert out.stderr.splitlines() == [
        f"tapproxy: warning: {other} describes no method taptest.Echo/Unary: its messages "
        "are shown by field number"]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_an_endless_descriptor_file_is_one_line_within_bounded_memory(tmp_path):
    capture = grpc_capture(tmp_path / "run.tap")
    out = subprocess.run([*TAPPROXY, "show", str(capture), "--exchange", "1",
                          "--proto-descriptor", "/dev/zero"], capture_output=True, text=True,
                         timeout=120, preexec_fn=_limit_memory)
    assert out.returncode == 2, out.stderr[-300:]
    assert out.stderr.splitlines() == [
        "tapproxy: error: /dev/zero: more than 64 MiB, not a protobuf descriptor set "
        "(protoc --descriptor_set_out=FILE)"]
