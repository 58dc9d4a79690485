"""The index: records found again by position, keys worked out per route on demand,
and a body kept only in part never served as whole."""

from __future__ import annotations

import hashlib

import httpx

from tapproxy.capture import (
    CaptureWriter,
    Exchange,
    Headers,
    Party,
    Request,
    Response,
    Timing,
    new_header,
    open_capture,
)
from tapproxy.replay.index import CaptureIndex
from tapproxy.replay.matching import CRITERIA, RequestView, request_key

_JSON = Headers((("content-type", "application/json"),))


def _exchange(n: int, path: str, body: bytes = b"", answer: bytes = b"{}", **response) -> Exchange:
    t = 1_700_000_000_000_000_000 + n * 1_000_000
    return Exchange(
        id=f"x{n}", caller=Party("tests", "proxy-auth"),
        callee=Party("orders", "reverse", "127.0.0.1:5001"),
        request=Request("POST" if body else "GET", "http", "127.0.0.1", 5001, path,
                        "HTTP/1.1", _JSON, body),
        response=Response(200, "OK", "HTTP/1.1", _JSON, answer, **response),
        timing=Timing(t, t + 1000, t + 2000, t + 3000), test="t1")


def _write(path, exchanges):
    w = CaptureWriter(path, new_header())
    for x in exchanges:
        w.write(x)
    w.close()
    return path


def test_raw_records_give_the_positions_record_at_reads(tmp_path):
    capture = _write(tmp_path / "a.tap", [_exchange(i, f"/o/{i}") for i in range(5)])
    with open_capture(capture) as reader:
        positions = [p for p, d in reader.raw_records() if d["kind"] == "exchange"]
        assert [reader.record_at(p).request.path for p in positions] == [
            f"/o/{i}" for i in range(5)]


def test_keys_are_worked_out_only_for_the_route_asked_for(tmp_path):
    body = b'{"sku": "tea", "at": "2026-12-07T10:00:00Z"}'
    capture = _write(tmp_path / "a.tap", [_exchange(1, "/orders", body),
                                          _exchange(2, "/orders/1"),
                                          _exchange(3, "/orders", b'{"sku": "cup"}')])
    index = CaptureIndex(capture, CRITERIA, lambda v: v)
    assert [e.key for e in index.entries] == [None, None, None]
    view = RequestView("POST", "/orders", "", "application/json", None,
                       b'{"at": "2026-12-07T10:00:00Z", "sku": "tea"}')
    found = index.lookup("orders", view, request_key(view, CRITERIA, index.mask))
    assert found == [0]
    assert index.entries[1].key is None  # GET /orders/1 was never asked for
    assert index.entries[2].key is not None
    index.close()


def test_a_response_kept_in_part_is_said_at_start_and_never_served_cut(tmp_path, start_replay):
    whole = b"x" * 5000
    capture = _write(tmp_path / "a.tap", [
        _exchange(1, "/big", answer=whole[:100], body_size=5000,
                  body_sha256=hashlib.sha256(whole).digest()),
        _exchange(2, "/small")])
    r = start_replay(capture)
    assert r.replay.start_lines()[-2:] == [
        "1 recorded response(s) kept only in part (over --max-body): never served",
        "  cut, they get a 502: #1"]
    resp = httpx.get(f"{r.url('orders')}/big")
    assert resp.status_code == 502 and resp.headers["x-tapproxy-replay"] == "cut"
    assert resp.text == ("tapproxy replay: cannot answer GET /big with recorded exchange "
                         "#1: its response body was kept only in part (100 of 5000 bytes, "
                         "over --max-body when recorded)\n")
    assert httpx.get(f"{r.url('orders')}/small").status_code == 200


def test_an_answer_recorded_without_content_type(tmp_path, start_replay):
    x = _exchange(1, "/raw", answer=b"abc")
    x = Exchange(**{**{f: getattr(x, f) for f in x.__dataclass_fields__},
                    "response": Response(200, "OK", "HTTP/1.1", Headers(), b"abc")})
    r = start_replay(_write(tmp_path / "a.tap", [x]))
    resp = httpx.get(f"{r.url('orders')}/raw")
    assert resp.content == b"abc"
    # aiohttp names a body without a type, as RFC 9110 allows; never a bogus one.
    assert resp.headers.get_list("content-type") == ["application/octet-stream"]


def test_a_request_body_kept_in_part_matches_the_whole_body_by_its_hash(tmp_path,
                                                                          start_replay):
    whole = b'{"items": [' + b",".join(b'"x%d"' % i for i in range(2000)) + b"]}"
    x = _exchange(1, "/upload", whole)
    x = Exchange(**{**{f: getattr(x, f) for f in x.__dataclass_fields__},
                    "request": Request("POST", "http", "127.0.0.1", 5001, "/upload",
                                       "HTTP/1.1", _JSON, whole[:100], body_size=len(whole),
                                       body_sha256=hashlib.sha256(whole).digest())})
    r = start_replay(_write(tmp_path / "a.tap", [x]))
    assert httpx.post(f"{r.url('orders')}/upload", content=whole,
                      headers={"content-type": "application/json"}).status_code == 200
    assert httpx.post(f"{r.url('orders')}/upload", content=whole.replace(b"x1999", b"y1999"),
                      headers={"content-type": "application/json"}).status_code == 502


def test_a_capture_cut_while_it_is_replayed_gets_a_502_saying_so(tmp_path, start_replay):
    # A large record between them: /b's lies past what reading /a read ahead.
    capture = _write(tmp_path / "a.tap", [_exchange(1, "/a"),
                                          _exchange(2, "/m", answer=b"x" * 100_000),
                                          _exchange(3, "/b")])
    r = start_replay(capture)
    assert httpx.get(f"{r.url('orders')}/a").status_code == 200
    with open_capture(capture) as reader:
        [*_, last] = [p for p, d in reader.raw_records() if d["kind"] == "exchange"]
    with open(capture, "r+b") as f:
        f.truncate(last[1] + 20)  # /b's record is cut (and what the writer put after it)
    resp = httpx.get(f"{r.url('orders')}/b")
    assert resp.status_code == 502 and resp.headers["x-tapproxy-replay"] == "error"
    assert resp.text.startswith(f"tapproxy replay: {capture}: record ")
    assert "is gone: the file changed while it was read" in resp.text
    assert r.log == [resp.text.rstrip("\n")]


def test_a_recorded_transport_error_is_answered_as_the_proxy_answered_it(tmp_path,
                                                                          start_replay):
    from tapproxy.capture import ErrorInfo

    x = _exchange(1, "/down")
    x = Exchange(**{**{f: getattr(x, f) for f in x.__dataclass_fields__}, "response": None,
                    "error": ErrorInfo("refused", "connection refused")})
    r = start_replay(_write(tmp_path / "a.tap", [x]))
    resp = httpx.get(f"{r.url('orders')}/down")
    assert resp.status_code == 502 and resp.headers["x-tapproxy-replay"] == "recorded-error"
    assert resp.text == ("tapproxy replay: the recorded exchange x1 got no response "
                         "(refused: connection refused)\n")
    assert r.stop().matched == 1
