"""Reading a capture: records/s and MB/s of `open_capture` iteration (frame, CRC, msgpack,
typed records), the read path of every command.

    .venv/bin/python benchmarks/decode_throughput.py [--exchanges 50000] [--rounds 7]

The capture holds exchanges shaped like the demo's (about 10 request and 8 response
headers, small JSON bodies) and a test record per 20 exchanges. Reported: the median of
`--rounds` full reads, after one warm-up read (the file is in the page cache), in wall
time and in this process's CPU time (steadier on a machine other work shares).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_767_225_600_000_000_000


def make_capture(path: Path, exchanges: int) -> None:
    from tapproxy.capture import (
        CaptureWriter,
        Exchange,
        Headers,
        Party,
        Request,
        Response,
        TestCase,
        Timing,
        new_header,
    )

    req_headers = Headers((
        ("Host", "orders:8080"), ("User-Agent", "python-requests/2.32.3"),
        ("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"), ("Connection", "keep-alive"),
        ("Content-Type", "application/json"), ("Content-Length", "61"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("authorization", "<redacted>"), ("X-Request-Id", "9b1c6f7e-02a4-4d1e-8e43-2f0e5c1d7a11"),
    ))
    resp_headers = Headers((
        ("Content-Type", "application/json; charset=utf-8"), ("Content-Length", "120"),
        ("Date", "Fri, 04 Dec 2026 16:00:00 GMT"), ("Server", "Python/3.12 aiohttp/3.11.11"),
        ("Cache-Control", "no-store"), ("X-Request-Id", "9b1c6f7e-02a4-4d1e-8e43-2f0e5c1d7a11"),
        ("Vary", "Accept-Encoding"), ("set-cookie", "<redacted>"),
    ))
    w = CaptureWriter(path, new_header({"listen": "127.0.0.1:8080"}))
    for i in range(exchanges):
        t = T0 + i * 1_000_000
        w.write(Exchange(
            id=f"{i:08x}-5e0c-4c4e-9b0a-3f2d1c0b9a87",
            caller=Party("shop", "proxy-auth", "127.0.0.1:51234"),
            callee=Party("orders", "service-map", "127.0.0.1:8080"),
            request=Request("POST", "http", "orders", 8080, f"/orders/{i}?expand=items",
                            "HTTP/1.1", req_headers,
                            b'{"sku": "tea", "qty": 2, "card": "4242-4242-4242-4242"}'),
            response=Response(201, "Created", "HTTP/1.1", resp_headers,
                              b'{"order": {"id": %d, "sku": "tea", "qty": 2, "status": "placed"'
                              b', "total": "12.40", "currency": "EUR"}}' % i),
            timing=Timing(request_start=t, request_end=t + 20_000, response_start=t + 900_000,
                          response_end=t + 950_000, client_conn_start=t - 5_000,
                          server_conn_start=t + 30_000, server_tcp_done=t + 90_000),
            test=f"tests/test_orders.py::test_{i // 20}", test_source="control",
        ))
        if i % 20 == 19:
            w.write(TestCase(f"tests/test_orders.py::test_{i // 20}", t - 20_000_000, t, "passed"))
    w.close()


def read_all(path: Path) -> int:
    from tapproxy.capture import open_capture

    n = 0
    with open_capture(path) as reader:
        for _ in reader:
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exchanges", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.tap"
        make_capture(path, args.exchanges)
        size = path.stat().st_size
        records = read_all(path)  # warm-up: page cache, imports
        times, cpu = [], []
        for _ in range(args.rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            read_all(path)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    med, med_cpu = statistics.median(times), statistics.median(cpu)
    print(f"{records} records, {size / 1e6:.1f} MB; median of {args.rounds} reads: "
          f"wall {med:.3f} s = {records / med:,.0f} records/s, {size / 1e6 / med:.1f} MB/s; "
          f"CPU {med_cpu:.3f} s = {records / med_cpu:,.0f} records/s, "
          f"{size / 1e6 / med_cpu:.1f} MB/s")


if __name__ == "__main__":
    main()
