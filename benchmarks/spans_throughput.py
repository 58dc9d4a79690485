"""Span synthesis over large captures: exchanges/s and peak memory by capture size.

    .venv/bin/python benchmarks/spans_throughput.py [--sizes 10000 100000] [--rounds 3]

Each capture holds tests of 20 exchanges (a call chain with fan-out, as a test of several
services makes). Every measurement runs in a fresh process, so peak RSS is that run's
own; memory should not grow with capture size because synthesis streams per test case.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PER_TEST = 20


def make_capture(path: Path, exchanges: int) -> None:
    """A capture of `exchanges` exchanges in tests of PER_TEST: tests → A → {B → C, D}…"""
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

    w = CaptureWriter(path, new_header({"benchmark": "spans"}))
    t0 = 1_700_000_000_000_000_000
    body = b'{"ok": true, "items": [1, 2, 3]}'
    headers = Headers((("content-type", "application/json"), ("user-agent", "bench/1")))
    services = ["A", "B", "C", "D", "E"]
    n = 0
    test_no = 0
    while n < exchanges:
        test = f"tests/test_flow.py::test_case_{test_no}"
        start = t0 + test_no * 50_000_000
        # One root call spanning the test, then nested calls staggered inside it.
        for i in range(min(PER_TEST, exchanges - n)):
            caller = "tests" if i == 0 else services[(i - 1) % 3]
            callee = services[0] if i == 0 else services[1 + (i - 1) % 4]
            s = start + i * 1_000_000
            e = start + 40_000_000 if i == 0 else s + 800_000
            x = Exchange(
                id=f"{test_no:08d}-{i:04d}", caller=Party(caller, "proxy-auth"),
                callee=Party(callee, "service-map", f"127.0.0.1:{5000 + i % 5}"),
                request=Request("GET", "http", "127.0.0.1", 5000 + i % 5, f"/items/{i}?q=1",
                                "HTTP/1.1", headers, b""),
                response=Response(200 if i % 7 else 503, "OK", "HTTP/1.1", headers, body),
                timing=Timing(request_start=s, request_end=s + 50_000,
                              response_start=e - 100_000, response_end=e),
                test=test, test_source="control",
            )
            w.write(x)
            n += 1
        w.write(TestCase(test, start - 1_000, start + 41_000_000, "passed"))
        test_no += 1
    w.close()


def measure(path: Path, encode: bool) -> dict:
    """Run synthesis over `path` in this process; report rate and peak RSS."""
    from tapproxy.spans.otlp import to_otlp_json
    from tapproxy.spans.stream import spans_of_capture

    t = time.perf_counter()
    exchanges = spans = 0
    for group in spans_of_capture(path):
        exchanges += group.exchanges
        spans += len(group.spans)
        if encode:
            json.dumps(to_otlp_json(group.spans))
    elapsed = time.perf_counter() - t
    return {"exchanges": exchanges, "spans": spans, "seconds": elapsed,
            "exchanges_per_s": exchanges / elapsed,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--measure", nargs=2, metavar=("CAPTURE", "ENCODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1] == "1")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        captures = {}
        for size in args.sizes:
            captures[size] = Path(tmp) / f"{size}.tap"
            make_capture(captures[size], size)
        results: dict[tuple[int, bool], list[dict]] = {}
        for _ in range(args.rounds):  # interleaved: noise hits every size alike
            for size in args.sizes:
                for encode in (False, True):
                    out = subprocess.run(
                        [sys.executable, __file__, "--measure", str(captures[size]),
                         "1" if encode else "0"], capture_output=True, text=True, check=True)
                    results.setdefault((size, encode), []).append(json.loads(out.stdout))
        print(f"| exchanges | capture MiB | step | exchanges/s (median of {args.rounds}) "
              "| peak RSS MiB (max) |")
        print("|--:|--:|---|--:|--:|")
        for (size, encode), runs in results.items():
            mib = captures[size].stat().st_size / 2**20
            rate = statistics.median(r["exchanges_per_s"] for r in runs)
            rss = max(r["peak_rss_mib"] for r in runs)
            step = "synthesize + OTLP/JSON" if encode else "synthesize"
            print(f"| {size:,} | {mib:.1f} | {step} | {rate:,.0f} | {rss:.1f} |")


if __name__ == "__main__":
    main()
