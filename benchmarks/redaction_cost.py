"""What default redaction costs per exchange (it runs where records are submitted).

A typical API exchange: a POST with a ~1.3 KiB JSON body (no credential in it) and a
~1.6 KiB JSON response, ordinary headers plus an Authorization header and a query with
one plain parameter. Times `Redactor()(exchange)` (the capture writer's transform, run
before encoding, on the caller: mitmproxy's event loop) and, for scale, its encoding
into a frame (record_to_wire + encode_frame).

    .venv/bin/python benchmarks/redaction_cost.py [--rounds 15] [--number 2000]
    git show REV:tapproxy/capture/redact.py > /tmp/old_redact.py
    .venv/bin/python benchmarks/redaction_cost.py --baseline /tmp/old_redact.py

Times CPU time of this process (time.process_time), so that other work on a shared
machine inflates the figures less; with --baseline the two Redactors run interleaved,
round by round, so both see the same machine.

Prints the median µs per exchange over the rounds, also for the same exchange with a
`password` key in its request body (parsed, masked, re-serialised).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
import timeit
from pathlib import Path

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.capture.redact import Redactor


def typical_exchange(with_secret: bool = False) -> Exchange:
    items = [{"sku": f"SKU-{i:05d}", "name": f"Widget number {i}", "qty": i % 7 + 1,
              "price": {"amount": 1999 + i, "currency": "EUR"}} for i in range(12)]
    request = {"customer": {"id": 4711, "email": "ann@example.org", "country": "DE"},
               "items": items, "note": "leave at the door", "coupon": None}
    if with_secret:  # a body that must be parsed, masked and re-encoded
        request["customer"]["password"] = "hunter2"
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
    ap.add_argument("--baseline", type=Path, help="an older redact.py to compare with")
    args = ap.parse_args()
    redactors = {"redact": Redactor()}
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_redact", args.baseline)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        redactors["baseline redact"] = old.Redactor()
    from tapproxy.capture.codec import record_to_wire
    from tapproxy.capture.writer import encode_frame

    def encode_record(record):
        return encode_frame(record_to_wire(record))

    x, xs = typical_exchange(), typical_exchange(with_secret=True)
    print(f"request body {len(x.request.body)} B, response body {len(x.response.body)} B")
    cases = {}
    for name, r in redactors.items():
        cases[name] = lambda r=r: r(x)
        cases[f"{name}, password in the request body"] = lambda r=r: r(xs)
    cases["encode"] = lambda: encode_record(x)
    per: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.rounds):  # interleaved: each round measures every case once
        for label, fn in cases.items():
            t = timeit.timeit(fn, number=args.number, timer=time.process_time)
            per[label].append(t / args.number * 1e6)
    for label, times in per.items():
        print(f"{label}: median {statistics.median(times):.2f} µs per exchange "
              f"(min {min(times):.2f}, {args.rounds} rounds × {args.number}, CPU time)")

if __name__ == "__main__":
    main()
