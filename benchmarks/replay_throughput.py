#!/usr/bin/env python3
"""Replay: requests/s of `tapproxy replay` beside `mitmdump --server-replay` on the same
capture and load; start-up time and peak memory on a 100,000-exchange capture.

    .venv/bin/python benchmarks/replay_throughput.py [--rounds 3] [--seconds 8]

Throughput: a capture of 1,000 recorded GETs (`/items/N`, ~120-byte JSON answers) is
written as a `.tap` and, for mitmdump, as a mitmproxy flow file of the same exchanges
(converted here: `tapproxy export` writes HAR only). `wrk` then cycles through the
1,000 paths against `tapproxy replay --service items@PORT` and against `mitmdump
--mode reverse:… --server-replay flows --server-replay-reuse` (mitmdump's way of
answering from recordings without a proxy setting: the request goes straight to its
port), at 1 and 10 connections, each configuration fresh every round, interleaved;
medians. Every answer must be a 200 (wrk's non-2xx count is reported).

Start-up: `tapproxy replay` on captures of 10,000 and 100,000 exchanges (half GETs,
half POSTs with JSON bodies, ~300-byte answers): seconds from spawn to its listeners
printed (interpreter and imports included), the index alone (in a process of its own,
imports done), and the process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
ITEMS = 1000
UPSTREAM = ("127.0.0.1", 5999)  # the recorded service's address (nothing listens there)
LOADS = ((1, 1), (10, 2))  # (connections, wrk threads)
TARGET = 3.0  # tapproxy's requests/s over mitmdump's

_LUA = """
local i = 0
request = function()
  i = (i + 1) %% %d
  return wrk.format("GET", "/items/" .. i)
end
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, "
    .. "\\"non2xx\\": %%d, \\"errors\\": %%d}\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- captures --------------------------------------------------------------------------


def write_items_capture(path: Path) -> list:
    from tapproxy.capture import (
        CaptureWriter,
        Exchange,
        Headers,
        Party,
        Request,
        Response,
        Timing,
        new_header,
    )

    host, port = UPSTREAM
    xs = []
    t0 = time.time_ns()
    w = CaptureWriter(path, new_header({"benchmark": "replay"}))
    for i in range(ITEMS):
        body = json.dumps({"id": i, "name": f"item {i}", "tags": ["a", "b"],
                           "price": 9.99, "note": "benchmark payload"}).encode()
        s = t0 + i * 1_000_000
        x = Exchange(
            id=f"{i:08d}", caller=Party("wrk", "proxy-auth"),
            callee=Party("items", "reverse", f"{host}:{port}"),
            request=Request("GET", "http", host, port, f"/items/{i}", "HTTP/1.1",
                            Headers((("host", f"{host}:{port}"), ("accept", "*/*")))),
            response=Response(200, "OK", "HTTP/1.1", Headers((
                ("content-type", "application/json"),
                ("content-length", str(len(body))))), body),
            timing=Timing(s, s + 10_000, s + 200_000, s + 250_000))
        w.write(x)
        xs.append(x)
    w.close()
    return xs


def write_flows(exchanges: list, path: Path) -> None:
    """The same exchanges as a mitmproxy flow file (what `mitmdump -w` would have kept)."""
    from mitmproxy import connection, http, io

    with open(path, "wb") as f:
        writer = io.FlowWriter(f)
        for x in exchanges:
            q, r = x.request, x.response
            client = connection.Client(peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 1),
                                       timestamp_start=time.time())
            server = connection.Server(address=(q.host, q.port))
            flow = http.HTTPFlow(client, server)
            flow.request = http.Request(q.host, q.port, q.method.encode(), q.scheme.encode(),
                                        f"{q.host}:{q.port}".encode(), q.path.encode(),
                                        b"HTTP/1.1", http.Headers(list(q.headers.raw)),
                                        q.body, None, time.time(), time.time())
            flow.response = http.Response(b"HTTP/1.1", r.status, r.reason.encode(),
                                          http.Headers(list(r.headers.raw)), r.body, None,
                                          time.time(), time.time())
            writer.add(flow)


def write_big_capture(path: Path, n: int) -> None:
    from tapproxy.capture import (
        CaptureWriter,
        Exchange,
        Headers,
        Party,
        Request,
        Response,
        Timing,
        new_header,
    )

    t0 = 1_700_000_000_000_000_000
    jh = Headers((("content-type", "application/json"), ("user-agent", "bench/1")))
    pad = "x" * 200
    w = CaptureWriter(path, new_header({"benchmark": "replay-startup"}), check=False)
    for i in range(n):
        post = i % 2 == 1
        body = json.dumps({"sku": f"s{i}", "qty": i % 7}).encode() if post else b""
        s = t0 + i * 1_000_000
        w.write(Exchange(
            id=f"{i:010d}", caller=Party("tests", "proxy-auth"),
            callee=Party(f"svc{i % 4}", "service-map", f"127.0.0.1:{5000 + i % 4}"),
            request=Request("POST" if post else "GET", "http", "127.0.0.1", 5000 + i % 4,
                            f"/items/{i}?page={i % 3}", "HTTP/1.1", jh, body),
            response=Response(200, "OK", "HTTP/1.1", jh, json.dumps(
                {"id": i, "name": f"item {i}", "pad": pad}).encode()),
            timing=Timing(s, s + 50_000, s + 500_000, s + 600_000),
            test=f"tests/test_x.py::test_{i // 20}", test_source="control"))
    w.close()


# -- runs ------------------------------------------------------------------------------


def wrk(port: int, script: Path, conns: int, threads: int, seconds: int) -> dict:
    r = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "-s",
                        str(script), f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON "):])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
            return d
    raise RuntimeError(f"wrk gave no result:\n{r.stdout}\n{r.stderr}")


def start(config: str, capture: Path, flows: Path, confdir: Path) -> tuple:
    port = free_port()
    if config == "tapproxy":
        cmd = [str(BIN / "tapproxy"), "replay", str(capture), "--service", f"items@{port}"]
    else:
        host, up = UPSTREAM
        cmd = [str(BIN / "mitmdump"), "-q", "--mode", f"reverse:http://{host}:{up}@{port}",
               "--set", f"confdir={confdir}", "--server-replay", str(flows),
               "--set", "server_replay_reuse=true", "--set", "server_replay_extra=404",
               "--set", "server_replay_refresh=false",
               # Never connect to the recorded upstream (nothing listens there).
               "--set", "connection_strategy=lazy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, proc, config)
    return proc, port


def throughput(rounds: int, seconds: int, tmp: Path) -> list[dict]:
    capture, flows = tmp / "items.tap", tmp / "items.mitm"
    write_flows(write_items_capture(capture), flows)
    script = tmp / "items.lua"
    script.write_text(_LUA % ITEMS)
    confdir = tmp / "mitmconf"
    results: dict[tuple[str, int], list[dict]] = {}
    configs = ["tapproxy", "mitmdump"]
    for rnd in range(rounds):
        for config in configs[rnd % 2:] + configs[:rnd % 2]:
            for conns, threads in LOADS:
                proc, port = start(config, capture, flows, confdir)
                try:
                    wrk(port, script, conns, threads, 1)  # warm-up
                    d = wrk(port, script, conns, threads, seconds)
                finally:
                    stop(proc)
                log(f"round {rnd + 1} {config:<9} c={conns:<3} {d['rps']:8.0f} req/s "
                    f"non-2xx {d['non2xx']} errors {d['errors']}")
                results.setdefault((config, conns), []).append(d)
    rows = []
    for conns, _ in LOADS:
        t = statistics.median(d["rps"] for d in results["tapproxy", conns])
        m = statistics.median(d["rps"] for d in results["mitmdump", conns])
        bad = sum(d["non2xx"] + d["errors"] for c in configs for d in results[c, conns])
        rows.append({"connections": conns, "tapproxy_rps": round(t), "mitmdump_rps": round(m),
                     "ratio": round(t / m, 2), "non2xx_or_errors": bad})
    return rows


_INDEX_ONLY = """
import sys, time
from tapproxy.replay.index import CaptureIndex
from tapproxy.replay.matching import CRITERIA
from tapproxy.replay.runner import noise_mask
mask = noise_mask()
t = time.perf_counter()
CaptureIndex(sys.argv[1], CRITERIA, mask).close()
print(time.perf_counter() - t)
"""


def startup(tmp: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        capture = tmp / f"big{n}.tap"
        write_big_capture(capture, n)
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(BIN / "tapproxy"), "replay", str(capture),
                                 "--first-port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [proc.stdout.readline() for _ in range(5)]  # the header and 4 services
        up = time.perf_counter() - t0
        if not lines[0].startswith("replaying"):
            raise RuntimeError(f"tapproxy replay did not start: {lines} {proc.stderr.read()}")
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
        stop(proc)
        index_s = float(subprocess.run([sys.executable, "-c", _INDEX_ONLY, str(capture)],
                                       capture_output=True, text=True, check=True).stdout)
        rows.append({"exchanges": n, "capture_mib": round(capture.stat().st_size / 2**20, 1),
                     "start_s": round(up, 2), "index_s": round(index_s, 2),
                     "peak_rss_mib": round(hwm / 1024, 1)})
        log(f"start-up {n:>7} exchanges: {up:.2f} s (the index {index_s:.2f} s), "
            f"peak RSS {hwm / 1024:.1f} MiB")
        capture.unlink()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        log("wrk is not installed (apt-get install wrk)")
        return 2
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as d:
        tmp = Path(d)
        rows = throughput(args.rounds, args.seconds, tmp)
        starts = startup(tmp, args.sizes)
    print("| connections | tapproxy replay req/s | mitmdump --server-replay req/s | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['connections']} | {r['tapproxy_rps']} | {r['mitmdump_rps']} | "
              f"{r['ratio']}× |")
    print()
    print("| exchanges | capture MiB | start-up s | of which the index s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for s in starts:
        print(f"| {s['exchanges']} | {s['capture_mib']} | {s['start_s']} | {s['index_s']} | "
              f"{s['peak_rss_mib']} |")
    ok = all(r["ratio"] >= TARGET and r["non2xx_or_errors"] == 0 for r in rows)
    print(f"\nthroughput target ≥ {TARGET}× mitmdump: {'met' if ok else 'NOT met'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"throughput": rows, "startup": starts}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
