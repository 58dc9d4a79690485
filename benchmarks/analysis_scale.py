"""`why` and `stats` over large captures: exchanges/s and peak memory by capture size;
and what the live metrics cost the recorder per exchange.

    .venv/bin/python benchmarks/analysis_scale.py [--sizes 10000 100000] [--rounds 3]

Each capture holds tests of 20 exchanges (a call chain with fan-out); every 10th test
fails (a 503 three hops down, propagated as 500 and 502). `why` tells every test's story
(the CLI's work without printing: the call tree, the first failure, the text lines);
`stats` aggregates by edge, route and test and renders the tables; `read` only decodes
the records, the floor both stand on. Each measurement runs
in a fresh process, so peak RSS is that run's own; it should not grow with the capture.
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


def _exchanges(test_no: int, count: int):
    from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing

    t0 = 1_700_000_000_000_000_000
    body = b'{"ok": true, "items": [1, 2, 3]}'
    headers = Headers((("content-type", "application/json"), ("user-agent", "bench/1")))
    test = f"tests/test_flow.py::test_case_{test_no}"
    start = t0 + test_no * 50_000_000
    failing = test_no % 10 == 9
    for i in range(count):
        # tests → A; A → B, C, D, E (fan-out); B → C → D nested inside B's request.
        if i == 0:
            caller, callee, s, e = "tests", "A", start, start + 40_000_000
        elif i in (1, 2, 3):  # A → B → C → D: the failing chain
            caller, callee = "ABC"[i - 1], "BCD"[i - 1]
            s, e = start + i * 1_000_000, start + (30 - i) * 1_000_000
        else:
            caller, callee = "A", "BCDE"[i % 4]
            s = start + (i + 10) * 1_000_000
            e = s + 800_000
        status = 200
        if failing and i <= 3:
            status = {0: 502, 1: 500, 2: 500, 3: 503}[i]
        yield Exchange(
            id=f"{test_no:08d}-{i:04d}", caller=Party(caller, "proxy-auth"),
            callee=Party(callee, "service-map", f"127.0.0.1:{5000 + i % 5}"),
            request=Request("GET", "http", "127.0.0.1", 5000 + i % 5, f"/items/{i}?q=1",
                            "HTTP/1.1", headers, b""),
            response=Response(status, "OK", "HTTP/1.1", headers, body),
            timing=Timing(request_start=s, request_end=s + 50_000,
                          response_start=e - 100_000, response_end=e),
            test=test, test_source="control",
        ), (test, start, failing)


def make_capture(path: Path, exchanges: int) -> None:
    from tapproxy.capture import CaptureWriter, TestCase, new_header

    w = CaptureWriter(path, new_header({"benchmark": "analysis"}))
    n = test_no = 0
    while n < exchanges:
        count = min(PER_TEST, exchanges - n)
        pairs = list(_exchanges(test_no, count))
        for x, _ in pairs:
            w.write(x)
        test, start, failing = pairs[-1][1]
        w.write(TestCase(test, start - 1_000, start + 41_000_000,
                         "failed" if failing else "passed"))
        n += count
        test_no += 1
    w.close()


def measure(path: Path, step: str) -> dict:
    """Run one step over `path` in this process; report rate and peak RSS."""
    from tapproxy.analysis.failure import first_failure
    from tapproxy.analysis.grouping import runs_by_test
    from tapproxy.analysis.metrics import Metrics
    from tapproxy.capture import Exchange, open_capture
    from tapproxy.report.stats import stats_lines
    from tapproxy.report.story import story_lines

    t = time.perf_counter()
    exchanges = roots = 0
    with open_capture(path) as reader:
        if step == "why":
            for run in runs_by_test(reader):
                exchanges += len(run.exchanges)
                story = first_failure(run.exchanges, test=run.name, outcome=run.outcome)
                if story.root is not None:
                    roots += 1
                    story_lines(story)
        elif step == "read":  # the floor: decoding every record, nothing else
            exchanges = sum(isinstance(r, Exchange) for r in reader)
        else:
            metrics = Metrics()
            for r in reader:
                if isinstance(r, Exchange):
                    metrics.add(r)
                    exchanges += 1
            stats_lines(metrics, ("edge", "route", "test"))
    elapsed = time.perf_counter() - t
    return {"exchanges": exchanges, "roots": roots, "seconds": elapsed,
            "exchanges_per_s": exchanges / elapsed,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def hot_path(rounds: int) -> float:
    """Median µs that `Metrics.add` (what the recorder adds per exchange) costs."""
    from tapproxy.analysis.metrics import Metrics

    xs = [x for n in range(50) for x, _ in _exchanges(n, PER_TEST)]  # 1,000 exchanges
    runs = []
    for _ in range(rounds):
        m = Metrics()
        t = time.perf_counter()
        for _ in range(100):
            for x in xs:
                m.add(x)
        runs.append((time.perf_counter() - t) / (100 * len(xs)) * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--measure", nargs=2, metavar=("CAPTURE", "STEP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        captures = {}
        for size in args.sizes:
            captures[size] = Path(tmp) / f"{size}.tap"
            make_capture(captures[size], size)
        results: dict[tuple[int, str], list[dict]] = {}
        for _ in range(args.rounds):  # interleaved: noise hits every size alike
            for size in args.sizes:
                for step in ("read", "why", "stats"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--measure", str(captures[size]), step],
                        capture_output=True, text=True, check=True)
                    results.setdefault((size, step), []).append(json.loads(out.stdout))
        print(f"| exchanges | capture MiB | step | exchanges/s (median of {args.rounds}) "
              "| peak RSS MiB (max) |")
        print("|--:|--:|---|--:|--:|")
        for (size, step), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            mib = captures[size].stat().st_size / 2**20
            rate = statistics.median(r["exchanges_per_s"] for r in runs)
            rss = max(r["peak_rss_mib"] for r in runs)
            print(f"| {size:,} | {mib:.1f} | {step} | {rate:,.0f} | {rss:.1f} |")
    print(f"\nlive metrics: Metrics.add costs {hot_path(max(args.rounds, 5)):.1f} µs per "
          "exchange (median of rounds of 100,000)")


if __name__ == "__main__":
    main()
