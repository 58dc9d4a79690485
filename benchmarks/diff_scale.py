"""`tapproxy diff` over large captures: wall time and peak memory by capture size.

    .venv/bin/python benchmarks/diff_scale.py [--sizes 10000 100000] [--rounds 3]

Two captures of the same run, as two recordings of a deterministic suite differ: every
response carries a fresh UUID, a timestamp and an epoch (noise the diff sets aside
from the values alone), `GET /health` is polled in every test with an uptime that
differs each time (noise learned from the repeated identical request), and 1 % of the
exchanges differ for real (an item's price; orders all cost the same). Tests of 20
exchanges. Each diff runs as the CLI in
a fresh process (`--format json` to /dev/null), so its peak RSS is its own; the figure
asked for is < 5 s for two 100,000-exchange captures, with memory flat in size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PER_TEST = 20
T0 = 1_700_000_000_000_000_000


def _exchanges(run: int, count: int):
    from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing

    headers = Headers((("content-type", "application/json"),))
    for n in range(count):
        test_no, i = divmod(n, PER_TEST)
        test = f"tests/test_flow.py::test_case_{test_no}"
        s = T0 + run * 10**12 + n * 2_000_000
        if i % 5 == 0:  # a health poll: identical requests, an answer that never repeats
            method, path = "GET", "/health"
            body = {"status": "up", "uptime_ms": (n * 7 + run * 13) % 100_003}
        else:
            # Items by a path of their own (no repeated request: nothing learned there),
            # orders all alike (the id, times and price of each learned as noise).
            method, path = ("GET", f"/items/{n}") if i % 2 else ("POST", "/orders")
            real = n % 100 == 37 and run == 1  # 1 %: differs for real (an item's price)
            body = {"id": str(uuid.uuid4()), "createdAt": f"2026-12-0{run + 1}T10:00:00Z",
                    "at": 1_765_000_000 + n + run, "sku": f"A-{i}", "qty": i,
                    "price": (5 + i + real) if method == "GET" else 5, "tags": ["x", "y"]}
        yield Exchange(
            id=f"{run}-{n:08d}", caller=Party("gateway", "proxy-auth"),
            callee=Party(f"svc{i % 4}", "service-map", "127.0.0.1:5000"),
            request=Request(method, "http", "127.0.0.1", 5000, path, "HTTP/1.1", headers,
                            b'{"sku": "A-1"}' if method == "POST" else b""),
            response=Response(200, "OK", "HTTP/1.1", headers, json.dumps(body).encode()),
            timing=Timing(request_start=s, request_end=s + 50_000,
                          response_start=s + 900_000, response_end=s + 1_000_000),
            test=test, test_source="control")


def make_capture(path: Path, run: int, exchanges: int) -> None:
    from tapproxy.capture import CaptureWriter, new_header

    w = CaptureWriter(path, new_header({"benchmark": "diff"}))
    for x in _exchanges(run, exchanges):
        w.write(x)
    w.close()


def run_diff(a: Path, b: Path) -> tuple[float, float, int, str, float]:
    """Wall seconds, peak RSS MiB, exit code, the summary line and CPU seconds of one
    diff (CPU too: on a shared machine the wall time says as much about the others)."""
    code = ("import resource, sys, time\n"
            "from tapproxy.cli import main\n"
            "sys.argv = ['tapproxy', 'diff', sys.argv[1], sys.argv[2], '--format', 'json']\n"
            "t = time.perf_counter()\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as e:\n"
            "    rc = e.code\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "sys.stderr.write(f'{time.perf_counter() - t} {u.ru_utime + u.ru_stime} '\n"
            "                 f'{u.ru_maxrss} {rc}\\n')\n")
    r = subprocess.run([sys.executable, "-c", code, str(a), str(b)], capture_output=True,
                       text=True, timeout=600)
    wall, cpu, rss, rc = r.stderr.split()[-4:]
    return float(wall), int(rss) / 1024, int(rc), r.stdout.splitlines()[-1], float(cpu)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {}
        for size in args.sizes:
            a, b = Path(tmp) / f"a{size}.tap", Path(tmp) / f"b{size}.tap"
            make_capture(a, 0, size)
            make_capture(b, 1, size)
            pairs[size] = (a, b)
        results: dict[int, list] = {size: [] for size in args.sizes}
        for _ in range(args.rounds):  # interleaved: a load spike hits every size alike
            for size, (a, b) in pairs.items():
                results[size].append(run_diff(a, b))
        print("| exchanges per capture | capture MiB | diff s (median) | CPU s (median) "
              "| peak RSS MiB (max) |")
        print("|---|---|---|---|---|")
        for size, runs in results.items():
            mib = pairs[size][0].stat().st_size / 2**20
            print(f"| {size:,} | {mib:.1f} | {statistics.median(r[0] for r in runs):.2f} | "
                  f"{statistics.median(r[4] for r in runs):.2f} | "
                  f"{max(r[1] for r in runs):.1f} |")
        for size, runs in results.items():
            print(f"{size:,}: exit {runs[-1][2]}; {runs[-1][3]}")


if __name__ == "__main__":
    main()
