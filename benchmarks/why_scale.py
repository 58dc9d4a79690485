"""`why` and `spans` where they used to be quadratic: many tests against a baseline, and
one test of very many calls. Seconds and peak RSS, each run in a fresh process.

    .venv/bin/python benchmarks/why_scale.py [--tests 1000 4000] [--calls 20000 100000]
        [--rounds 1] [--timeout 300] [--source DIR]

Captures are written with tapproxy's own CaptureWriter (no proxy): `--tests N` gives a
capture of N tests of 5 calls each (every 10th test fails three hops down) and a
passing baseline of the same N tests, for `why CAPTURE --baseline BASELINE`; `--calls N`
gives one failing test of N calls (the test calls gw N/2 times, one at a time, and each
gw request makes one nested call; the last pair fails), for `why CAPTURE --test T` and
`spans CAPTURE --out /dev/null`. A run that does not end within `--timeout` seconds is
killed and reported as such. `--source DIR` measures the tapproxy package in DIR (an
export of an older commit) instead of the installed one.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
BIG_TEST = "tests/test_big.py::test_big"


def _exchange(test: str, n: int, caller: str, callee: str, path: str, start: int, end: int,
              status: int):
    from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing

    headers = Headers((("content-type", "application/json"),))
    body = b'{"ok": %s, "n": %d}' % (b"true" if status < 400 else b"false", n % 7)
    return Exchange(
        id=f"{test[-12:]}-{n:07d}", caller=Party(caller, "proxy-auth"),
        callee=Party(callee, "service-map", f"127.0.0.1:{5000 + len(callee)}"),
        request=Request("GET", "http", "127.0.0.1", 5000 + len(callee), path, "HTTP/1.1",
                        headers, b""),
        response=Response(status, "OK" if status < 400 else "Error", "HTTP/1.1", headers,
                          body),
        timing=Timing(request_start=start, request_end=start + 10_000,
                      response_start=end - 10_000, response_end=end),
        test=test, test_source="control")


def _small_test(w, test_no: int, failing: bool) -> None:
    """tests → gw → orders → payments (503 when failing), plus gw → stock twice."""
    from tapproxy.capture import TestCase

    test = f"tests/test_many.py::test_{test_no:06d}"
    s = T0 + test_no * 100 * MS
    status = (502, 500, 503) if failing else (200, 200, 200)
    w.write(_exchange(test, 0, "tests", "gw", "/checkout", s, s + 50 * MS, status[0]))
    w.write(_exchange(test, 1, "gw", "stock", "/stock/1", s + 1 * MS, s + 2 * MS, 200))
    w.write(_exchange(test, 2, "gw", "orders", "/orders", s + 3 * MS, s + 40 * MS, status[1]))
    w.write(_exchange(test, 3, "orders", "payments", "/charges", s + 4 * MS, s + 30 * MS,
                      status[2]))
    w.write(_exchange(test, 4, "gw", "stock", "/stock/2", s + 41 * MS, s + 42 * MS, 200))
    w.write(TestCase(test, s - MS, s + 60 * MS, "failed" if failing else "passed"))


def make_many_tests(path: Path, tests: int, baseline: bool) -> None:
    from tapproxy.capture import CaptureWriter, new_header

    w = CaptureWriter(path, new_header({"benchmark": "why-baseline"}), None)
    for i in range(tests):
        _small_test(w, i, failing=not baseline and i % 10 == 9)
    w.close()


def make_one_big_test(path: Path, calls: int) -> None:
    """One test that calls gw over and over, one call at a time; each gw request makes
    one nested call of its own (to a, b, c or d in turn); the last one fails."""
    from tapproxy.capture import CaptureWriter, TestCase, new_header

    test = BIG_TEST
    w = CaptureWriter(path, new_header({"benchmark": "why-big-test"}), None)
    n, t = 0, T0
    while n + 2 <= calls:
        last = n + 2 > calls - 2
        w.write(_exchange(test, n, "tests", "gw", f"/run/{n}", t, t + 800_000,
                          502 if last else 200))
        w.write(_exchange(test, n + 1, "gw", "abcd"[n // 2 % 4], f"/items/{n}",
                          t + 100_000, t + 600_000, 503 if last else 200))
        n, t = n + 2, t + MS
    w.write(TestCase(test, T0 - MS, t + MS, "failed"))
    w.close()


def _measure(argv: list[str]) -> None:
    """Run argv as a child and print `seconds peak_rss_kib exit_code` (for measure)."""
    env = dict(os.environ)
    if env.pop("TAPPROXY_BENCH_PYTHONPATH", ""):
        env["PYTHONPATH"] = os.environ["TAPPROXY_BENCH_PYTHONPATH"]
    t = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, env=env).returncode
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"{seconds:.3f} {rss} {code}", file=sys.stderr)


def measure(argv: list[str], timeout: float) -> tuple[str, str]:
    """(seconds, peak RSS MiB) of argv, or ('> timeout', '-') when it ran too long."""
    t = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wrapper's own
    env["TAPPROXY_BENCH_PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    # Run from / so that `python -m` does not find a tapproxy/ in the current directory.
    proc = subprocess.Popen([sys.executable, __file__, "--measure", *argv], env=env, cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return f"> {timeout:.0f}", "-"
    lines = err.strip().splitlines()
    seconds, rss, code = lines[-1].split()
    if code != "0":
        return f"exit {code} after {time.perf_counter() - t:.1f}", "-"
    return f"{float(seconds):.1f}", f"{int(rss) / 1024:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", type=int, nargs="*", default=[1000, 4000])
    ap.add_argument("--calls", type=int, nargs="*", default=[20_000, 100_000])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--source", type=Path, help="measure the tapproxy package in this "
                    "directory instead (e.g. an export of an older commit)")
    ap.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        _measure(args.measure)
        return
    tapproxy = [str(Path(sys.executable).with_name("tapproxy"))]
    if args.source:  # that tree's package first on the path; captures still written here
        os.environ["PYTHONPATH"] = str(args.source.resolve())
        tapproxy = [sys.executable, "-m", "tapproxy"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.tests:
            cap, base = Path(tmp) / f"tests{n}.tap", Path(tmp) / f"base{n}.tap"
            make_many_tests(cap, n, baseline=False)
            make_many_tests(base, n, baseline=True)
            rows += [(f"why --baseline, {n:,} tests",
                      [*tapproxy, "why", str(cap), "--baseline", str(base)])]
        for n in args.calls:
            cap = Path(tmp) / f"calls{n}.tap"
            make_one_big_test(cap, n)
            rows += [(f"why --test, one test of {n:,} calls",
                      [*tapproxy, "why", str(cap), "--test", BIG_TEST]),
                     (f"spans --out, one test of {n:,} calls",
                      [*tapproxy, "spans", str(cap), "--out", "/dev/null"])]
        where = subprocess.run([sys.executable, "-c", "import tapproxy; print(tapproxy.__file__)"],
                               capture_output=True, text=True, cwd=tmp).stdout.strip()
        print(f"tapproxy measured: {where}\n")
        print("| run | seconds | peak RSS MiB |")
        print("|---|--:|--:|")
        for _ in range(args.rounds):
            for label, argv in rows:
                seconds, rss = measure(argv, args.timeout)
                print(f"| {label} | {seconds} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
