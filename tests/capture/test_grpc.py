"""gRPC framing and the one notion of "failed" for gRPC exchanges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tapproxy.capture.grpc import MessageClock, iter_messages
from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing

T0 = 1_700_000_000_000_000_000
GRPC = (("content-type", "application/grpc+proto"),)


def _x(headers=GRPC, trailers=None, status=200, path="/pkg.v1.Orders/Get") -> Exchange:
    return Exchange(
        id="g", caller=Party("a", "peer"), callee=Party("b", "host"),
        request=Request("POST", "http", "b", 80, path, "HTTP/2.0", Headers(GRPC)),
        response=Response(status, "", "HTTP/2.0", Headers(headers), b"",
                          trailers=None if trailers is None else Headers(trailers)),
        timing=Timing(request_start=T0))


def test_grpc_status_from_trailers_or_a_trailers_only_answer():
    ok = _x(trailers=(("grpc-status", "0"),))
    not_found = _x(trailers=(("grpc-status", "5"), ("grpc-message", "no%20order%207")))
    trailers_only = _x(headers=(*GRPC, ("grpc-status", "13")))
    assert (ok.grpc_status, ok.grpc_status_name, ok.failed) == (0, "OK", False)
    assert (not_found.grpc_status_name, not_found.grpc_message) == ("NOT_FOUND", "no order 7")
    assert not_found.failed and trailers_only.failed
    assert trailers_only.grpc_status_name == "INTERNAL"
    assert ok.grpc_method == ("pkg.v1.Orders", "Get")


def test_grpc_status_counts_only_for_grpc_content_types():
    plain = _x(headers=(("content-type", "application/json"),),
               trailers=(("grpc-status", "5"),))
    plain = Exchange(**{**{f: getattr(plain, f) for f in plain.__dataclass_fields__},
                        "request": Request("POST", "http", "b", 80, "/x", "HTTP/2.0")})
    assert plain.grpc_status is None and not plain.failed and plain.grpc_method is None


def _framed(messages: list[tuple[bool, bytes]]) -> bytes:
    return b"".join(bytes([c]) + len(m).to_bytes(4) + m for c, m in messages)


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), max_size=6),
       st.lists(st.integers(1, 30), max_size=20))
def test_clock_finds_every_message_however_the_body_is_chunked(messages, cuts):
    body = _framed(messages)
    clock = MessageClock()
    i = 0
    for cut in cuts:
        assert clock(body[i:i + cut]) == body[i:i + cut]  # passed on unchanged
        i += cut
    clock(body[i:])
    assert [(c, n) for c, n, _ in clock.frames] == [(c, len(m)) for c, m in messages]
    assert list(iter_messages(body)) == messages
    assert list(iter_messages(body[:-1])) == messages[:-1]  # a cut-off message is left out
