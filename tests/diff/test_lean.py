"""The diff over exchanges as the file holds them gives exactly what it gives over the
records: the same keys, request keys, comparisons and sides, for exchanges of every
shape (headers, queries, encodings, text, bytes kept in part, errors, no answer)."""

from __future__ import annotations

import dataclasses
import gzip
import itertools

from tapproxy.capture import ErrorInfo, Headers, Party, open_capture
from tapproxy.capture.fastwire import ExchangeWire, exchange_of
from tapproxy.diff.align import align_key
from tapproxy.diff.compare import LatencyThreshold, compare_exchanges
from tapproxy.diff.engine import _side
from tapproxy.diff.lean import compare_wires, wire_key, wire_request_key
from tapproxy.diff.learning import CaptureNoise
from tapproxy.noise import NoiseModel, request_key
from tests.diff.build import JSON, answered
from tests.spans.build import exchange, write_capture

_HEADED = (("content-type", "application/json"), ("date", "Mon, 07 Dec 2026 20:57:04 GMT"))


def _variants() -> list:
    base = answered("x", {"id": 1, "items": [{"sku": "A", "price": 5}]}, path="/orders/1?x=1",
                    method="POST", request_body=b'{"b": 1, "a": 2}',
                    request_headers=(("content-type", "application/json"),))
    r = base.response
    gz = Headers((("content-type", "application/json"), ("content-encoding", "gzip")))
    return [
        base,
        answered("x", {"id": 2, "items": [{"sku": "A", "price": 6}, 7]}, path="/orders/2?x=2"),
        answered("x", {"id": 1, "items": []}, headers=_HEADED, path="/orders/1?y=1&y=2"),
        answered("x", {"id": 1}, request_body=b'{"a": 2, "b": 1}', method="POST",
                 path="/orders/1?x=1", request_headers=(("content-type", "application/json"),
                                                       ("x-trace", "1"))),
        answered("x", raw=b"line one\nline 2\n", headers=(("content-type", "text/plain"),)),
        answered("x", raw=b"line one\nline 3\n", headers=(("content-type", "text/plain"),)),
        answered("x", raw=b'{"id": 1, "items": [}', headers=JSON),  # declared JSON, is not
        answered("x", raw=b"\x00\x01binary", headers=(("content-type", "image/png"),)),
        answered("x", raw=b'{"id": 1}', headers=()),  # JSON told by its first byte
        answered("x", raw=b'{"id": 1}', headers=(("content-type", "application/x+json"),)),
        dataclasses.replace(base, response=dataclasses.replace(
            r, headers=gz, body=gzip.compress(b'{"id": 1, "items": [3]}'))),
        dataclasses.replace(base, response=dataclasses.replace(
            r, headers=gz, body=gzip.compress(b'{"id": 2, "items": [3]}'))),
        dataclasses.replace(base, response=dataclasses.replace(
            r, body=r.body[:4], body_size=len(r.body), body_sha256=b"\x01" * 32)),
        dataclasses.replace(base, response=dataclasses.replace(
            r, trailers=Headers((("x-checksum", "9"),)))),
        answered("x", {"id": 1}, status=500, start=3, end=90),
        exchange("x", "shop", "orders", 0, 9, status=None, error=ErrorInfo("refused", "no"),
                 test="t::a", path="/orders/1"),
        dataclasses.replace(base, callee=Party("127.0.0.1", "host", "127.0.0.1:5000"),
                            caller=Party("10.0.0.9", "peer")),
        answered("x", {"id": 1}, headers=(("content-type", "application/grpc"),)),
    ]


def test_wire_forms_key_and_compare_as_the_records_do(tmp_path) -> None:
    records = _variants()
    path = write_capture(tmp_path / "v.tap", records)
    with open_capture(path) as reader:
        wires = list(reader.lean_records())
    assert all(isinstance(w, ExchangeWire) for w in wires)
    read = [exchange_of(w) for w in wires]
    for w, x in zip(wires, read, strict=True):
        assert wire_key(w, x.route) == align_key(x).astuple()
        assert wire_request_key(w) == request_key(x)
        assert _side("3", w) == _side("3", x)
    compared = 0
    for latency in (None, LatencyThreshold(ns=1)):
        for (wa, xa), (wb, xb) in itertools.product(zip(wires, read, strict=True), repeat=2):
            assert compare_wires(wa, wb, None, latency) == compare_exchanges(
                xa, xb, None, latency)
            compared += 1
    assert compared == 2 * len(records) ** 2


def test_noise_learned_while_diffing_is_what_the_records_teach(tmp_path) -> None:
    """Repeated requests answered otherwise (JSON, gzip, text, headers), learned with
    each first answer read again only when a repeat differs."""
    gz = (("content-type", "application/json"), ("content-encoding", "gzip"))
    records = []
    for n in range(4):
        records += [
            answered(f"h{n}", {"up": True, "uptime": n * 7}, path="/health"),
            answered(f"g{n}", raw=gzip.compress(b'{"seq": %d, "k": 1}' % (n % 2)),
                     headers=gz, path="/zipped"),
            answered(f"t{n}", raw=b"served by %d" % n,
                     headers=(("content-type", "text/plain"),), path="/who"),
            answered(f"d{n}", {"same": True}, path="/dated",
                     headers=(*JSON, ("x-served-at", str(n)))),
            answered(f"s{n}", {"same": True}, path="/static"),
            answered(f"u{n}", {"n": n}, path=f"/unique/{n}a"),
        ]
    path = write_capture(tmp_path / "n.tap", records)
    with open_capture(path) as reader, open_capture(path) as again:
        learner = CaptureNoise(again.lean_record_at)
        for w in reader.lean_records():
            learner.add(w, reader.position, None)
        learned = learner.model()
    assert learned == NoiseModel.learn(records)
    assert {(rk[2], p) for rk, p in learned.noise} == {
        ("/health", "/uptime"), ("/zipped", "/seq"), ("/who", ""),
        ("/dated", "header:x-served-at")}
