"""The proxy's OTLP/HTTP receiver: protobuf and JSON, gzip, and bad input refused."""

from __future__ import annotations

import gzip
import json

import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tapproxy.capture.model import SpanBatch
from tapproxy.spans.model import Span
from tapproxy.spans.otlp import decode_batch, to_otlp_json, to_readable
from tapproxy.supervisor.options import Address
from tests.conftest import free_port

SPAN = Span(0x1234, 0x56, 0x78, "GET /c", "server", "C", 10, 20, {"http.route": "/c"})


def test_receiver_stores_protobuf_json_and_gzip_batches(start_proxy):
    receiver = Address("127.0.0.1", free_port())
    proxy = start_proxy(otlp_receive=receiver)
    url = f"http://{receiver}/v1/traces"
    proto = encode_spans(to_readable([SPAN])).SerializeToString()
    as_json = json.dumps(to_otlp_json([SPAN])).encode()
    sent = [
        ({"content-type": "application/x-protobuf"}, proto),
        ({"content-type": "application/json"}, as_json),
        ({"content-type": "application/x-protobuf", "content-encoding": "gzip"},
         gzip.compress(proto)),
    ]
    for headers, body in sent:
        r = requests.post(url, data=body, headers=headers, timeout=10)
        assert r.status_code == 200, r.text
    assert requests.post(url, data=b"{}", timeout=10,
                         headers={"content-type": "application/json"}).json() == {}
    batches = [r for r in proxy.records() if isinstance(r, SpanBatch)]
    assert len(batches) == 4
    for batch in batches[:3]:
        [span] = decode_batch(batch)
        assert (span.trace_id, span.span_id, span.parent_span_id) == (0x1234, 0x56, 0x78)
        assert (span.name, span.kind, span.service) == ("GET /c", "server", "C")
        assert span.attributes == {"http.route": "/c"} and not span.synthesized
    assert batches[2].payload == proto  # stored as received, gzip undone


def test_receiver_refuses_what_is_not_otlp(start_proxy):
    receiver = Address("127.0.0.1", free_port())
    proxy = start_proxy(otlp_receive=receiver)
    url = f"http://{receiver}/v1/traces"
    bad = requests.post(url, data=b"\x00garbage", timeout=10,
                        headers={"content-type": "application/x-protobuf"})
    assert bad.status_code == 400
    assert requests.post(url, data=b"[1]", timeout=10,
                         headers={"content-type": "application/json"}).status_code == 400
    assert requests.post(url, data=b"x", timeout=10,
                         headers={"content-type": "text/plain"}).status_code == 415
    assert not [r for r in proxy.records() if isinstance(r, SpanBatch)]
