"""How fast `NoiseModel.learn` reads exchanges, and that its memory stays bounded.

    .venv/bin/python benchmarks/noise_learn.py [--exchanges 100000] [--keys 1000]

Builds small JSON exchanges in memory (a ~250-byte body of an order with three items,
a `requestId` UUID and a `servedAt` time that differ on every answer, a Date header)
and times `learn` over them, two ways:

- repeated: `--keys` distinct requests, each asked exchanges/keys times (the case
  learning is for: every repeat is compared with the first answer);
- unique: every request different (the worst case: every body parsed and fingerprinted,
  the oldest fingerprints forgotten past the bound).

Prints CPU seconds (and wall seconds), exchanges/s, what was learned and the peak
memory `learn` allocated (tracemalloc, measured in a second, untimed pass).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.noise import NoiseModel

T0 = 1_767_225_600_000_000_000


def build(n: int, keys: int) -> list[Exchange]:
    caller, callee = Party("gateway", "proxy-auth"), Party("orders", "service-map")
    req_headers = Headers((("accept", "application/json"),))
    out = []
    for i in range(n):
        k = i % keys
        body = json.dumps({
            "id": k, "status": "paid", "customer": f"c{k % 97}",
            "items": [{"sku": f"s{k % 13}-{j}", "qty": j + 1, "price": 9.5 * (j + 1)}
                      for j in range(3)],
            "requestId": str(uuid.UUID(int=i)), "servedAt": f"2026-12-07T20:{i // 60 % 60:02d}:"
            f"{i % 60:02d}Z"}).encode()
        headers = Headers((("content-type", "application/json"),
                           ("date", f"Mon, 07 Dec 2026 20:{i // 60 % 60:02d}:{i % 60:02d} GMT"),
                           ("content-length", str(len(body)))))
        out.append(Exchange(
            id=f"x{i}", caller=caller, callee=callee,
            request=Request("GET", "http", "127.0.0.1", 8080, f"/orders/{k}", "HTTP/1.1",
                            req_headers),
            timing=Timing(T0 + i * 1000),
            response=Response(200, "OK", "HTTP/1.1", headers, body)))
    return out


def measure(name: str, exchanges: list[Exchange]) -> None:
    # CPU seconds of this process: on a shared machine wall time measures the neighbours.
    t, wall = time.process_time(), time.perf_counter()
    model = NoiseModel.learn(exchanges)
    seconds, wall = time.process_time() - t, time.perf_counter() - wall
    tracemalloc.start()
    NoiseModel.learn(exchanges)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    learned = sorted({p for _, p in model.learned()})
    print(f"{name:>9}: {len(exchanges):,} exchanges in {seconds:.2f} s CPU "
          f"({len(exchanges) / seconds:,.0f}/s; {wall:.2f} s wall), "
          f"peak {peak / 2**20:.1f} MiB; learned {learned}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exchanges", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=1000)
    args = ap.parse_args()
    measure("repeated", build(args.exchanges, args.keys))
    measure("unique", build(args.exchanges, args.exchanges))


if __name__ == "__main__":
    main()
