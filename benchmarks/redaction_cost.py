"""What default redaction costs per exchange on the writer thread.

A typical API exchange: a POST with a ~1.3 KiB JSON body (no credential in it) and a
~1.6 KiB JSON response, ordinary headers plus an Authorization header and a query with
one plain parameter. Times `Redactor()(exchange)` (what the writer thread runs before
encoding) and, for scale, its encoding into a frame (record_to_wire + encode_frame).

    .venv/bin/python benchmarks/redaction_cost.py [--rounds 15] [--number 2000]

Prints the median µs per exchange over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.capture.redact import Redactor


def typical_exchange() -> Exchange:
    items = [{"sku": f"SKU-{i:05d}", "name": f"Widget number {i}", "qty": i % 7 + 1,
              "price": {"amount": 1999 + i, "currency": "EUR"}} for i in range(12)]
    request = {"customer": {"id": 4711, "email": "ann@example.org", "country": "DE"},
               "items": items, "note": "leave at the door", "coupon": None}
    response = {"order": {"id": "ord-8812", "status": "created", "items": items,
                          "total": {"amount": 31337, "currency": "EUR"}},
                "links": {"self": "/orders/ord-8812", "pay": "/orders/ord-8812/pay"}}
    q_headers = (("Host", "orders:8000"), ("User-Agent", "python-httpx/0.28.1"),
                 ("Accept", "application/json"), ("Accept-Encoding", "gzip, deflate"),
                 ("Connection", "keep-alive"), ("Content-Type", "application/json"),
                 ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
                 ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    r_headers = (("Content-Type", "application/json; charset=utf-8"),
                 ("Date", "Fri, 04 Dec 2026 16:00:00 GMT"), ("Server", "aiohttp"),
                 ("X-Request-Id", "req-42"))
    return Exchange(
        id="x1",
        caller=Party("checkout", "proxy-auth", "127.0.0.1:50000"),
        callee=Party("orders", "service-map", "127.0.0.1:8000"),
        request=Request("POST", "http", "orders", 8000, "/orders?expand=items", "HTTP/1.1",
                        Headers(q_headers), json.dumps(request).encode()),
        timing=Timing(request_start=1_767_225_600_000_000_000),
        response=Response(201, "Created", "HTTP/1.1", Headers(r_headers),
                          json.dumps(response).encode()),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--number", type=int, default=2000)
    args = ap.parse_args()
    x = typical_exchange()
    redact = Redactor()
    from tapproxy.capture.codec import record_to_wire
    from tapproxy.capture.writer import encode_frame

    def encode_record(record):
        return encode_frame(record_to_wire(record))

    print(f"request body {len(x.request.body)} B, response body {len(x.response.body)} B")
    for label, fn in (("redact", lambda: redact(x)), ("encode", lambda: encode_record(x))):
        times = timeit.repeat(fn, number=args.number, repeat=args.rounds)
        per = [t / args.number * 1e6 for t in times]
        print(f"{label}: median {statistics.median(per):.2f} µs per exchange "
              f"(min {min(per):.2f}, {args.rounds} rounds × {args.number})")


if __name__ == "__main__":
    main()
