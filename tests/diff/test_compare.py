"""How two exchanges differ: status, gRPC status, headers (hop-by-hop and volatile ones
aside), bodies by what they are, and latency past a threshold."""

from __future__ import annotations

import dataclasses

import pytest

from tapproxy.capture import ErrorInfo, GrpcMessage
from tapproxy.diff.compare import compare_exchanges, compare_tunnels, parse_latency_threshold
from tapproxy.errors import UsageError
from tests.diff.build import JSON, answered
from tests.spans.build import T0


def found(a, b, **kw):
    return [(c.part, c.path, c.kind, c.expected, c.actual)
            for c in compare_exchanges(a, b, **kw)]


def test_status_and_a_json_field() -> None:
    a = answered("a", {"price": 5}, status=200)
    b = answered("b", {"price": 6}, status=201)
    assert found(a, b) == [("status", "", "changed", 200, 201),
                           ("response.body", "/price", "changed", 5, 6)]


def test_the_same_body_in_other_bytes_is_equal() -> None:
    a = answered("a", raw=b'{"a": 1, "b": [1, 2]}')
    b = answered("b", raw=b'{"b":[1,2],"a":1}')
    assert found(a, b) == []


def test_volatile_and_hop_by_hop_headers_are_not_compared() -> None:
    a = answered("a", {}, headers=(*JSON, ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
                                   ("etag", '"1"'), ("connection", "keep-alive"),
                                   ("content-length", "2"), ("x-version", "1")))
    b = answered("b", {}, headers=(*JSON, ("date", "Tue, 08 Dec 2026 11:00:00 GMT"),
                                   ("etag", '"2"'), ("content-length", "3"),
                                   ("x-version", "2"), ("x-new", "y")))
    assert found(a, b) == [("response.header", "x-version", "changed", "1", "2"),
                           ("response.header", "x-new", "added", None, "y")]


def test_an_error_instead_of_a_response() -> None:
    a = answered("a", {})
    b = dataclasses.replace(answered("b", {}), response=None,
                            error=ErrorInfo("refused", "connection refused"))
    assert found(a, b) == [("error", "", "changed", None, "refused")]


def test_form_fields_and_query_parameters_by_name() -> None:
    form = (("content-type", "application/x-www-form-urlencoded"),)
    a = answered("a", raw=b"a=1&b=2&b=3", headers=form, path="/f?x=1&y=2")
    b = answered("b", raw=b"a=1&b=2&b=4", headers=form, path="/f?x=1")
    assert found(a, b) == [("request.query", "/y", "removed", "2", None),
                           ("response.body", "/b/1", "changed", "3", "4")]


def test_text_by_line() -> None:
    text = (("content-type", "text/plain"),)
    a = answered("a", raw=b"one\ntwo\n", headers=text)
    b = answered("b", raw=b"one\n2\n", headers=text)
    assert found(a, b) == [("response.body", "line 2", "changed", "two", "2")]


def test_binary_by_size_and_hash() -> None:
    octets = (("content-type", "application/octet-stream"),)
    a = answered("a", raw=b"\x00\x01\x02", headers=octets)
    b = answered("b", raw=b"\x00\x01\x03\x04", headers=octets)
    [(part, path, kind, exp, act)] = found(a, b)
    assert (part, path, kind) == ("response.body", "", "changed")
    assert exp.startswith("3 bytes sha256:") and act.startswith("4 bytes sha256:")


def test_a_body_kept_in_part_is_compared_by_the_whole_bodys_size_and_hash() -> None:
    a = answered("a", raw=b"AAAA")
    b = answered("b", raw=b"AAAA")
    a = dataclasses.replace(a, response=dataclasses.replace(
        a.response, body_size=10_000, body_sha256=b"\x01" * 32))
    b = dataclasses.replace(b, response=dataclasses.replace(
        b.response, body_size=10_000, body_sha256=b"\x02" * 32))
    [(_, _, _, exp, act)] = found(a, b)
    assert exp == "10,000 bytes sha256:" + "01" * 6
    assert act == "10,000 bytes sha256:" + "02" * 6


def test_a_json_body_that_became_text() -> None:
    a = answered("a", {"ok": True})
    b = answered("b", raw=b"Internal error", headers=(("content-type", "text/plain"),))
    assert found(a, b) == [
        ("response.header", "content-type", "changed", "application/json", "text/plain"),
        ("response.body", "", "changed", {"ok": True}, "Internal error")]


def grpc(id: str, messages, status: str = "0"):
    x = answered(id, raw=b"", method="POST", path="/taptest.Echo/Unary",
                 headers=(("content-type", "application/grpc"),),
                 request_headers=(("content-type", "application/grpc"),))
    trailers = (("grpc-status", status),)
    from tapproxy.capture import Headers

    return dataclasses.replace(
        x, response=dataclasses.replace(x.response, trailers=Headers(trailers)),
        grpc_messages=tuple(GrpcMessage(c, False, T0, d) for c, d in messages))


def test_grpc_status_and_messages_field_by_field_by_number() -> None:
    req = (True, b"\x0a\x02hi")  # 1: "hi"
    a = grpc("a", [req, (False, b"\x0a\x02hi\x10\x01")])  # 1: "hi", 2: 1
    b = grpc("b", [req, (False, b"\x0a\x02ho\x10\x01\x18\x05")], status="5")
    assert found(a, b) == [("grpc-status", "", "changed", "OK", "NOT_FOUND"),
                           ("response.messages", "/0/1", "changed", "hi", "ho"),
                           ("response.messages", "/0/3", "added", None, 5)]


def test_grpc_messages_by_name_with_a_descriptor_set(tmp_path) -> None:
    from tapproxy.capture.protobuf import ProtoSchema
    from tests.grpc.test_proto_descriptor import descriptor_set

    schema = ProtoSchema(descriptor_set(tmp_path / "e.desc", "taptest", "Echo", "Unary"))
    a = grpc("a", [(True, b"\x0a\x02hi"), (False, b"\x0a\x02hi")])
    b = grpc("b", [(True, b"\x0a\x02hi"), (False, b"\x0a\x03hey")])
    assert found(a, b, schema=schema) == [
        ("response.messages", "/0/text", "changed", "hi", "hey")]


def test_latency_past_the_threshold_only() -> None:
    a = answered("a", {}, start=0, end=10)
    b = answered("b", {}, start=0, end=200)
    assert found(a, b) == []
    assert found(a, b, latency=parse_latency_threshold("100ms")) == [
        ("latency", "", "changed", "10.0 ms", "200.0 ms")]
    assert found(a, b, latency=parse_latency_threshold("2000%")) == []
    assert found(b, a, latency=parse_latency_threshold("1ms")) == []  # faster is no news


@pytest.mark.parametrize("bad", ["fast", "10", "-5ms", "%"])
def test_a_bad_latency_threshold_names_the_option(bad) -> None:
    with pytest.raises(UsageError, match="--latency-threshold"):
        parse_latency_threshold(bad)


def test_tunnels_by_bytes_each_way() -> None:
    from tapproxy.capture import Party, Tunnel

    t = Tunnel("t", Party("db-client", "proxy-auth"), Party("db", "host"), "not_http", T0,
               T0 + 5, 100, 2000)
    u = dataclasses.replace(t, bytes_from_server=2500)
    assert [(c.path, c.expected, c.actual) for c in compare_tunnels(t, u)] == [
        ("bytes_from_server", 2000, 2500)]


def test_multipart_bodies_compare_without_their_random_boundaries() -> None:
    def upload(id: str, boundary: str, name: str):
        ctype = f"multipart/form-data; boundary={boundary}"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
                f"{name}\r\n--{boundary}--\r\n").encode()
        return answered(id, {}, method="POST", request_body=body,
                        request_headers=(("content-type", ctype),))

    assert found(upload("a", "x1b2c3", "one"), upload("b", "99zz88", "one")) == []
    assert found(upload("a", "x1b2c3", "one"), upload("b", "99zz88", "two")) == [
        ("request.body", "line 4", "changed", "one", "two")]
