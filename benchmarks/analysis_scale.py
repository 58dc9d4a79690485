"""The analyses over large captures: exchanges/s and peak memory by capture size; one
test's story from a ~1 GB capture through its index; what the live metrics cost.

    .venv/bin/python benchmarks/analysis_scale.py [--sizes 10000 100000] [--rounds 3]
        [--big-mib 1024] [--steps read why stats spans show check]

Each capture holds tests of 20 exchanges (a call chain with fan-out); every 10th test
fails (a 503 three hops down, propagated as 500 and 502). Each step runs the command's
own function (`why`, `stats`, `show`, `check` with an own-format contract, as the CLI
calls them, output to /dev/null; `spans` is synthesis, `spans_of_capture`, as
spans_throughput.py measures it) in a fresh process, after its imports, so peak RSS is
that run's own (it should not grow with the capture); `read` only decodes the records,
the floor all stand on. Rates are wall-clock; CPU seconds are given too, the steadier
figure on a shared machine. `why --test` on the big capture is the whole command in a
fresh process (start-up included), with and without the capture's closing index.
"""

from __future__ import annotations

import argparse
import dataclasses
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


CONTRACT = """tapproxy: 1
interactions:
  - id: item
    request: {method: GET, path: "/items/{n}"}
    response: {status: 200, body: {ok: {type: boolean}, items: {type: array}}}
    count: any
"""


def _run_command(step: str, path: Path) -> None:
    """The CLI command's own function, as `tapproxy STEP CAPTURE` calls it."""
    import contextlib
    import os

    import typer

    from tapproxy.cli import _commands

    _commands()
    from tapproxy.cli.check import check
    from tapproxy.cli.explain import stats, why
    from tapproxy.cli.reading import show

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.suppress(typer.Exit):
        if step == "why":
            why(path, None, False, None, None, None, None)
        elif step.startswith("why-test="):
            why(path, step.partition("=")[2], False, None, None, None, None)
        elif step == "stats":
            stats(path, False, None, None, None)
        elif step == "show":
            show(path, None, None, False, False, None, None, False)
        elif step == "check":
            contract = path.with_suffix(".yaml")
            contract.write_text(CONTRACT)
            check(path, [str(contract)], "text", None)


def measure(path: Path, step: str) -> dict:
    """Run one step over `path` in this process; report rate, CPU and peak RSS."""
    from tapproxy.capture import Exchange, open_capture
    from tapproxy.spans.stream import spans_of_capture

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    exchanges = 0
    if step not in ("read",) and not step.startswith("why-test="):
        with open_capture(path) as reader:
            exchanges = sum(1 for _ in reader.exchanges())
    if step not in ("read", "spans"):
        _run_command(step, path.with_name("warm.tap"))  # imports, not the capture
    t, c = time.perf_counter(), cpu()
    if step == "read":  # the floor: decoding every record, nothing else
        with open_capture(path) as reader:
            exchanges = sum(isinstance(r, Exchange) for r in reader)
    elif step == "spans":
        for _ in spans_of_capture(path):
            pass
    else:
        _run_command(step, path)
    elapsed, cpu_s = time.perf_counter() - t, cpu() - c
    return {"exchanges": exchanges, "seconds": elapsed, "cpu_seconds": cpu_s,
            "exchanges_per_s": exchanges / elapsed,
            "cpu_exchanges_per_s": exchanges / cpu_s if cpu_s else 0.0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def make_big_capture(path: Path, mib: int) -> tuple[int, str]:
    """A capture of about `mib` MiB (bodies of 3 KiB): (exchanges, a failing test)."""
    from tapproxy.capture import CaptureWriter, Response, TestCase, new_header

    body = b'{"items": "' + b"x" * 3000 + b'"}'
    w = CaptureWriter(path, new_header({"benchmark": "big"}), check=False)
    n = test_no = 0
    while True:
        pairs = list(_exchanges(test_no, PER_TEST))
        for x, _ in pairs:
            w.write(dataclasses.replace(x, response=Response(
                x.response.status, "OK", "HTTP/1.1", x.response.headers, body)))
        test, start, failing = pairs[-1][1]
        w.write(TestCase(test, start - 1_000, start + 41_000_000,
                         "failed" if failing else "passed"))
        n += PER_TEST
        test_no += 1
        if test_no % 100 == 0 and w.bytes_written > mib << 20:
            break
    w.close()
    middle = test_no // 2 // 10 * 10 + 9  # a failing test half-way through
    return n, f"tests/test_flow.py::test_case_{middle}"


def time_command(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of a command in a fresh process."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *argv],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss = float(out.stderr.strip().splitlines()[-1]) if out.stderr.strip() else 0.0
    return wall, rss, out.returncode


def _child(argv: list[str]) -> None:
    code = subprocess.run(argv, stdout=subprocess.DEVNULL).returncode
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, file=sys.stderr)
    sys.exit(code)


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
    ap.add_argument("--steps", nargs="+",
                    default=["read", "why", "stats", "spans", "show", "check"])
    ap.add_argument("--big-mib", type=int, default=1024,
                    help="size of the capture for `why --test` (0: leave it out)")
    ap.add_argument("--measure", nargs=2, metavar=("CAPTURE", "STEP"), help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    if args.child:
        _child(args.child)
    with tempfile.TemporaryDirectory() as tmp:
        captures = {}
        make_capture(Path(tmp) / "warm.tap", 100)
        for size in args.sizes:
            captures[size] = Path(tmp) / f"{size}.tap"
            make_capture(captures[size], size)
        results: dict[tuple[int, str], list[dict]] = {}
        for _ in range(args.rounds):  # interleaved: noise hits every size alike
            for size in args.sizes:
                for step in args.steps:
                    out = subprocess.run(
                        [sys.executable, __file__, "--measure", str(captures[size]), step],
                        capture_output=True, text=True, check=True)
                    results.setdefault((size, step), []).append(json.loads(out.stdout))
        print(f"| exchanges | capture MiB | step | exchanges/s (median of {args.rounds}) "
              "| CPU exchanges/s (median) | peak RSS MiB (max) |")
        print("|--:|--:|---|--:|--:|--:|")
        order = {s: i for i, s in enumerate(args.steps)}
        for (size, step), runs in sorted(results.items(),
                                         key=lambda kv: (order[kv[0][1]], kv[0][0])):
            mib = captures[size].stat().st_size / 2**20
            rate = statistics.median(r["exchanges_per_s"] for r in runs)
            cpu = statistics.median(r["cpu_exchanges_per_s"] for r in runs)
            rss = max(r["peak_rss_mib"] for r in runs)
            print(f"| {size:,} | {mib:.1f} | {step} | {rate:,.0f} | {cpu:,.0f} | {rss:.1f} |")
        if args.big_mib:
            big = Path(tmp) / "big.tap"
            n, test = make_big_capture(big, args.big_mib)
            cut = Path(tmp) / "big-no-index.tap"  # the same capture, its index's tail cut
            with open(big, "rb") as src, open(cut, "wb") as dst:
                size = big.stat().st_size
                while src.tell() < size - 1:
                    dst.write(src.read(min(64 << 20, size - 1 - src.tell())))
            tapproxy = str(Path(sys.executable).with_name("tapproxy"))
            print(f"\n`why --test` on {big.stat().st_size / 2**20:,.0f} MiB ({n:,} exchanges), "
                  "whole command:\n")
            print("| capture | command s (median) | of which `why` itself s | "
                  "peak RSS MiB | exit |")
            print("|---|--:|--:|--:|--:|")
            for label, path, rounds in (("with its index", big, args.rounds),
                                        ("index cut off (read whole)", cut, 1)):
                runs = [time_command([tapproxy, "why", str(path), "--test", test])
                        for _ in range(rounds)]
                inner = [json.loads(subprocess.run(
                    [sys.executable, __file__, "--measure", str(path), f"why-test={test}"],
                    capture_output=True, text=True, check=True).stdout)["seconds"]
                    for _ in range(rounds)]
                print(f"| {label} | {statistics.median(r[0] for r in runs):.2f} | "
                      f"{statistics.median(inner):.3f} | {max(r[1] for r in runs):.0f} | "
                      f"{runs[-1][2]} |")
    print(f"\nlive metrics: Metrics.add costs {hot_path(max(args.rounds, 5)):.1f} µs per "
          "exchange (median of rounds of 100,000)")


if __name__ == "__main__":
    main()
