#!/usr/bin/env python3
"""Proxy overhead: bare mitmdump vs `mitmdump -w` vs `tapproxy record`, side by side.

(d) is the mitmproxy tapproxy embeds, with the same addons, recording nothing: set
against (c) it gives recording's own cost.

    .venv/bin/python benchmarks/proxy_overhead.py --json benchmarks/results.json

Starts its own upstream (nginx, serving a ~100-byte JSON file and a 1 MiB file) and,
round after round, each proxy configuration fresh, loading it with `wrk` through the
plain-HTTP forward proxy (absolute-form requests) at 1 and 10 connections. The
configurations are interleaved within every round (and their order rotated), so a
noisy neighbour hits all of them alike; the table reports medians over the rounds and
each configuration's ratio to bare mitmdump. See benchmarks/README.md.

Needs `nginx` (or `nginx-light`) and `wrk` from Debian; without nginx it falls back to
an aiohttp upstream in a separate process and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

CONFIGS = {
    "mitmdump": "(a) mitmdump -q",
    "mitmdump-w": "(b) mitmdump -q -w flows.mitm",
    "tapproxy": "(c) tapproxy record --control off",
    "tapproxy-mitmproxy": "(d) tapproxy's mitmproxy, not recording",
}
BASELINE = "mitmdump"
PAYLOADS = {"small": "small.json", "1MiB": "big.bin"}
# (connections, wrk threads)
LOADS = ((1, 1), (10, 2))
TARGETS = {"small": 0.95, "1MiB": 0.90}  # tapproxy req/s as a share of bare mitmdump's
WORKERS_TARGETS = {"small": 2.7, "1MiB": 1.5}  # with --workers on every core (issue 29)

SMALL_BODY = (json.dumps({"id": 12345, "name": "widget", "tags": ["a", "b", "c"],
                          "price": 9.99, "in_stock": True, "note": "benchmark payload"},
                         separators=(",", ":")) + "\n").encode()
BIG_SIZE = 1 << 20

_TICK = os.sysconf("SC_CLK_TCK")


def tapproxy_revision() -> str:
    """The commit the measured tapproxy was at ("+dirty" when tapproxy/ had changes)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--",
                                "tapproxy"], capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """user+system CPU of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a `--workers N` run's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU of every process in `pids` that is still running."""
    total = 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def peak_rss_mib(pid: int) -> int | None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return None


def machine_cpu() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    steal = v[7] if len(v) > 7 else 0
    total = sum(v[:8])
    return total - idle - steal, steal, total


def busy_pct(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[float, float]:
    """Machine CPU busy and steal, in % of all cores, between two machine_cpu() readings."""
    total = max(b[2] - a[2], 1)
    return 100 * (b[0] - a[0]) / total, 100 * (b[1] - a[1]) / total


def stop(proc: subprocess.Popen, timeout: float = 120) -> float:
    """SIGINT, wait (killing after `timeout`); returns the seconds it took to exit."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return time.monotonic() - t0


# -- upstream -----------------------------------------------------------------------------

class Upstream:
    """nginx (or the aiohttp fallback) on 127.0.0.1:port, serving both payloads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.www = root / "www"
        self.www.mkdir(parents=True)
        (self.www / PAYLOADS["small"]).write_bytes(SMALL_BODY)
        (self.www / PAYLOADS["1MiB"]).write_bytes(os.urandom(BIG_SIZE))
        self.bodies = {k: (self.www / v).read_bytes() for k, v in PAYLOADS.items()}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.kind = ""
        self.version = ""

    def start(self, nginx: str | None) -> None:
        for p in (self.root, self.www, *self.www.iterdir()):
            p.chmod(0o755 if p.is_dir() else 0o644)  # in case nginx drops privileges
        if nginx:
            self._start_nginx(nginx)
        else:
            self._start_aiohttp()
        wait_port(self.port, self.proc, self.kind)

    def _start_nginx(self, nginx: str) -> None:
        r = self.root
        conf = r / "nginx.conf"
        conf.write_text(textwrap.dedent(f"""\
            daemon off;
            master_process off;
            worker_processes 1;
            pid {r}/nginx.pid;
            error_log {r}/nginx-error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {r}/tmp-body;
                proxy_temp_path {r}/tmp-proxy;
                fastcgi_temp_path {r}/tmp-fastcgi;
                uwsgi_temp_path {r}/tmp-uwsgi;
                scgi_temp_path {r}/tmp-scgi;
                types {{ application/json json; application/octet-stream bin; }}
                sendfile on;
                tcp_nopush on;
                tcp_nodelay on;
                keepalive_timeout 300s;
                keepalive_requests 10000000;
                server {{
                    listen 127.0.0.1:{self.port} reuseport;
                    root {self.www};
                    location / {{ }}
                }}
            }}
            """))
        v = subprocess.run([nginx, "-v"], capture_output=True, text=True)
        self.version = (v.stderr or v.stdout).strip().replace("nginx version: ", "")
        self.kind = "nginx"
        self.proc = subprocess.Popen(
            [nginx, "-p", str(r), "-e", str(r / "nginx-error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(r / "nginx-stderr.log", "wb"),  # noqa: SIM115
        )

    def _start_aiohttp(self) -> None:
        code = textwrap.dedent(f"""\
            from aiohttp import web
            app = web.Application()
            app.router.add_static("/", {str(self.www)!r})
            web.run_app(app, host="127.0.0.1", port={self.port}, access_log=None,
                        print=None)
            """)
        import aiohttp

        self.kind = "aiohttp (fallback, not nginx)"
        self.version = aiohttp.__version__
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)

    def url(self, payload: str) -> str:
        return f"http://127.0.0.1:{self.port}/{PAYLOADS[payload]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load generator -----------------------------------------------------------------------

_LUA = """\
wrk.method = "GET"
wrk.path = "{path}"
wrk.headers["Host"] = "{host}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%.0f,\\"duration_us\\":%.0f,\\"bytes\\":%.0f," ..
    "\\"err_connect\\":%.0f,\\"err_read\\":%.0f,\\"err_write\\":%.0f," ..
    "\\"err_status\\":%.0f,\\"err_timeout\\":%.0f," ..
    "\\"p50_us\\":%.0f,\\"p90_us\\":%.0f,\\"p99_us\\":%.0f,\\"mean_us\\":%.1f,\\"max_us\\":%.0f}}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


class Wrk:
    def __init__(self, exe: str, scripts_dir: Path, upstream: Upstream) -> None:
        self.exe = exe
        self.scripts: dict[tuple[str, bool], Path] = {}
        host = f"127.0.0.1:{upstream.port}"
        for payload in PAYLOADS:
            for absolute in (True, False):
                path = upstream.url(payload) if absolute else f"/{PAYLOADS[payload]}"
                p = scripts_dir / f"{payload}-{'abs' if absolute else 'origin'}.lua"
                p.write_text(_LUA.format(path=path, host=host))
                self.scripts[payload, absolute] = p
        v = subprocess.run([exe, "-v"], capture_output=True, text=True)
        text = (v.stdout + v.stderr).strip()
        self.version = text.splitlines()[0].split(" Copyright")[0] if text else "?"

    def run(self, port: int, payload: str, conns: int, threads: int, seconds: int,
            absolute: bool = True, timeout_s: int = 10) -> dict:
        cmd = [self.exe, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", f"--timeout={timeout_s}s",
               "--latency", "-s", str(self.scripts[payload, absolute]), f"http://127.0.0.1:{port}/"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        for line in r.stdout.splitlines():
            if line.startswith("WRKJSON "):
                d = json.loads(line[len("WRKJSON "):])
                d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
                d["errors"] = sum(d[k] for k in d if k.startswith("err_"))
                return d
        raise RuntimeError(f"wrk gave no result (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


# -- proxies --------------------------------------------------------------------------------

@dataclass
class Tools:
    mitmdump: str
    tapproxy: str
    wrk: Wrk


EXTRA: dict[str, str] = {}  # --extra NAME=COMMAND


def proxy_command(cfg: str, tools: Tools, port: int, confdir: Path, out: Path) -> list[str]:
    if cfg in EXTRA:
        return shlex.split(EXTRA[cfg].format(port=port, out=out, confdir=confdir,
                                             python=sys.executable,
                                             mitmdump=tools.mitmdump, tapproxy=tools.tapproxy))
    if cfg in ("mitmdump", "mitmdump-w"):
        cmd = [tools.mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
               "--set", f"confdir={confdir}"]
        if cfg == "mitmdump-w":
            cmd += ["-w", str(out / "flows.mitm")]
        return cmd
    if is_tapproxy(cfg):
        workers = ["--workers", cfg.removeprefix("tapproxy-w")] if cfg != "tapproxy" else []
        return [tools.tapproxy, "record", "-o", str(out / "run.tap"),
                "--listen", f"127.0.0.1:{port}", "--control", "off", "--confdir",
                str(confdir), *workers]
    if cfg == "tapproxy-mitmproxy":
        return [sys.executable,
                str(Path(__file__).with_name("tapproxy_mitmproxy.py")),
                "--listen", f"127.0.0.1:{port}", "--confdir", str(confdir)]
    raise ValueError(cfg)


def is_tapproxy(cfg: str) -> bool:
    """tapproxy record, with one worker or (tapproxy-wN, --workers) several."""
    return cfg == "tapproxy" or cfg.startswith("tapproxy-w")


def fetch_via_proxy(proxy_port: int, url: str) -> tuple[int, bytes]:
    """One absolute-form GET through the forward proxy (not urllib: it honours NO_PROXY)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
    try:
        conn.request("GET", url, headers={"Host": url.split("/")[2]})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check_proxy(port: int, upstream: Upstream) -> None:
    for payload, body in upstream.bodies.items():
        status, got = fetch_via_proxy(port, upstream.url(payload))
        if status != 200 or got != body:
            raise RuntimeError(f"proxy on {port}: {payload}: status {status}, {len(got)} bytes "
                               f"(expected 200, {len(body)} bytes)")


def count_capture(path: Path) -> dict:
    """Exchanges in a .tap capture, read back with tapproxy's own reader."""
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import Exchange

    n = ok = failed = other = 0
    by_size: dict[int, int] = {}
    with open_capture(path) as reader:
        for rec in reader:
            if not isinstance(rec, Exchange):
                other += 1
                continue
            n += 1
            if rec.response is not None and rec.response.status == 200 and rec.error is None:
                ok += 1
                size = len(rec.response.body)
                by_size[size] = by_size.get(size, 0) + 1
            else:
                failed += 1
        truncated = reader.truncated
    return {"exchanges": n, "ok_200": ok, "failed": failed, "other_records": other,
            "body_sizes": {str(k): v for k, v in sorted(by_size.items())},
            "truncated": truncated}


def run_config_round(cfg: str, rnd: int, tools: Tools, upstream: Upstream, confdir: Path,
                     work: Path, args) -> dict:
    out = work / f"r{rnd}-{cfg}"
    out.mkdir()
    port = free_port()
    cmd = proxy_command(cfg, tools, port, confdir, out)
    stdout_path, stderr_path = out / "stdout.txt", out / "stderr.txt"
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(stdout_path, "wb"),  # noqa: SIM115
                            stderr=open(stderr_path, "wb"))  # noqa: SIM115
    result: dict = {"round": rnd, "config": cfg, "cells": []}
    pids = [proc.pid]
    sent = 0  # requests completed by clients (checks, warm-ups, measurements)
    inflight_max = 0  # requests that may have been cut at the end of wrk runs
    try:
        wait_port(port, proc, cfg)
        result["startup_s"] = round(time.monotonic() - t0, 3)
        if is_tapproxy(cfg) and cfg != "tapproxy":
            # The first worker listening answers the port; all of them are up once the
            # supervisor announces the proxy.
            deadline = time.monotonic() + 60
            while b"# forward proxy at" not in stdout_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cfg}: workers did not all start")
                time.sleep(0.05)
        pids = process_tree(proc.pid)  # with --workers: the supervisor and its workers
        check_proxy(port, upstream)
        sent += len(PAYLOADS)
        for payload in args.payloads:
            for conns, threads in LOADS:
                if conns not in args.connections:
                    continue
                if args.warmup > 0:
                    w = tools.wrk.run(port, payload, conns, threads, args.warmup)
                    sent += w["requests"]
                    inflight_max += conns
                    if w["errors"]:
                        log(f"  warm-up errors: {w}")
                c0, u0, t_0 = tree_cpu_seconds(pids), cpu_seconds(upstream.proc.pid), \
                    time.monotonic()
                mc0, w0 = machine_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
                m = tools.wrk.run(port, payload, conns, threads, args.duration)
                wall = time.monotonic() - t_0
                c1, u1 = tree_cpu_seconds(pids), cpu_seconds(upstream.proc.pid)
                w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                m["machine_busy_pct"], m["steal_pct"] = busy_pct(mc0, machine_cpu())
                m["wrk_cpu_pct"] = 100 * (w1.ru_utime + w1.ru_stime - w0.ru_utime
                                          - w0.ru_stime) / wall
                # What the machine spent beyond proxy, upstream and wrk (other tenants,
                # kernel threads such as writeback), in % of one core: a noisy-cell flag.
                m["other_cpu_pct"] = (m["machine_busy_pct"] * (os.cpu_count() or 1)
                                      - 100 * (c1 - c0 + u1 - u0) / wall - m["wrk_cpu_pct"])
                sent += m["requests"]
                inflight_max += conns
                m.update(payload=payload, connections=conns, threads=threads,
                         proxy_cpu_pct=100 * (c1 - c0) / wall,
                         upstream_cpu_pct=100 * (u1 - u0) / wall,
                         proxy_cpu_us_per_req=1e6 * (c1 - c0) / max(m["requests"], 1))
                expected = len(upstream.bodies[payload])
                m["bytes_per_req"] = m["bytes"] / max(m["requests"], 1)
                if m["errors"] or m["bytes_per_req"] < expected:
                    log(f"  WARNING {cfg} {payload} c{conns}: errors={m['errors']} "
                        f"bytes/req={m['bytes_per_req']:.0f} (< {expected}?)")
                result["cells"].append(m)
                log(f"  {CONFIGS[cfg]:<36} {payload:>5} c{conns:<2} {m['rps']:9.1f} req/s  "
                    f"p50 {m['p50_us'] / 1000:7.2f} ms  p99 {m['p99_us'] / 1000:7.2f} ms  "
                    f"proxy CPU {m['proxy_cpu_pct']:5.1f}%  upstream CPU "
                    f"{m['upstream_cpu_pct']:4.1f}%  wrk {m['wrk_cpu_pct']:3.0f}%  "
                    f"machine {m['machine_busy_pct']:3.0f}% busy, "
                    f"others {m['other_cpu_pct']:3.0f}%")
    finally:
        # Peak RSS of each process (the proxy; with --workers its supervisor first, then
        # each worker), and their sum.
        rss = [peak_rss_mib(p) for p in pids]
        result["rss_per_process_mib"] = [r for r in rss if r is not None]
        result["peak_rss_mib"] = sum(result["rss_per_process_mib"])
        result["stop_s"] = round(stop(proc), 3)
        result["exit_code"] = proc.returncode
    result["requests_completed"] = sent
    result["inflight_max"] = inflight_max
    files = {p.name: p.stat().st_size for p in out.iterdir() if p.suffix in (".tap", ".mitm")}
    result["output_bytes"] = files
    if is_tapproxy(cfg):
        tap = out / "run.tap"
        result["capture"] = count_capture(tap)
        said = [ln for ln in stdout_path.read_text(errors="replace").splitlines()
                if "exchanges recorded" in ln or "merged into" in ln]
        result["capture"]["tapproxy_said"] = said[-1] if said else None
        x = result["capture"]["exchanges"]
        result["capture"]["records_match"] = sent <= x <= sent + inflight_max
        log(f"  capture: {files.get('run.tap', 0) / 2**20:.1f} MiB, {x} exchanges "
            f"({result['capture']['ok_200']} ok, {result['capture']['failed']} failed); "
            f"clients completed {sent} (+ up to {inflight_max} cut at wrk's end) -> "
            f"{'OK' if result['capture']['records_match'] else 'MISMATCH'}")
    if proc.returncode not in (0, -signal.SIGINT, 130):
        log(f"  {cfg} exited with {proc.returncode}: "
            f"{stderr_path.read_text(errors='replace')[-2000:]}")
    if not args.keep_files:
        shutil.rmtree(out)
    # Let the kernel finish with the (possibly gigabytes of) output before the next
    # configuration is measured, so that one's writeback is not charged to another.
    t_sync = time.monotonic()
    os.sync()
    result["sync_s"] = round(time.monotonic() - t_sync, 3)
    return result


# -- summary --------------------------------------------------------------------------------

def summarize(rounds: list[dict], configs: list[str]) -> list[dict]:
    cells: dict[tuple[str, str, int], list[dict]] = {}
    for r in rounds:
        for c in r["cells"]:
            cells.setdefault((r["config"], c["payload"], c["connections"]), []).append(
                dict(c, round=r["round"]))
    base_by_round = {(k[1], k[2], c["round"]): c["rps"]
                     for k, v in cells.items() if k[0] == BASELINE for c in v}
    rows = []
    for (cfg, payload, conns), v in cells.items():
        rps = [c["rps"] for c in v]
        row = {
            "config": cfg, "payload": payload, "connections": conns, "rounds": len(v),
            "rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p50_ms": statistics.median(c["p50_us"] for c in v) / 1000,
            "p99_ms": statistics.median(c["p99_us"] for c in v) / 1000,
            "proxy_cpu_us_per_req": statistics.median(c["proxy_cpu_us_per_req"] for c in v),
            "proxy_cpu_pct": statistics.median(c["proxy_cpu_pct"] for c in v),
            "upstream_cpu_pct": statistics.median(c["upstream_cpu_pct"] for c in v),
            "machine_busy_pct": statistics.median(c["machine_busy_pct"] for c in v),
            "wrk_cpu_pct": statistics.median(c["wrk_cpu_pct"] for c in v),
            "other_cpu_pct": statistics.median(c["other_cpu_pct"] for c in v),
        }
        base = [c for (p, n, _), c in base_by_round.items() if (p, n) == (payload, conns)]
        if base:
            row["ratio"] = row["rps_median"] / statistics.median(base)
            paired = [c["rps"] / base_by_round[payload, conns, c["round"]] for c in v
                      if (payload, conns, c["round"]) in base_by_round]
            row["paired_ratio_median"] = statistics.median(paired) if paired else None
            row["paired_ratio_min"] = min(paired) if paired else None
            row["paired_ratio_max"] = max(paired) if paired else None
        rows.append(row)
    order = {c: i for i, c in enumerate(configs)}
    rows.sort(key=lambda r: (list(PAYLOADS).index(r["payload"]), r["connections"],
                             order[r["config"]]))
    return rows


def markdown(rows: list[dict], reference: list[dict] | None) -> str:
    out = ["| config | payload | conns | req/s (median) | req/s min–max | p50 ms | p99 ms "
           "| vs (a) | paired vs (a), min–max | proxy CPU µs/req | proxy CPU % | wrk CPU % "
           "| others' CPU % |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "–"
        paired = (f"{r['paired_ratio_median']:.2f} ({r['paired_ratio_min']:.2f}–"
                  f"{r['paired_ratio_max']:.2f})" if r.get("paired_ratio_median") else "–")
        out.append(f"| {CONFIGS[r['config']]} | {r['payload']} | {r['connections']} "
                   f"| {r['rps_median']:.0f} | {r['rps_min']:.0f}–{r['rps_max']:.0f} "
                   f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio} | {paired} "
                   f"| {r['proxy_cpu_us_per_req']:.0f} | {r['proxy_cpu_pct']:.0f} "
                   f"| {r['wrk_cpu_pct']:.0f} | {r['other_cpu_pct']:.0f} |")
    if reference:
        out.append("")
        out.append("Upstream alone (wrk straight to it, no proxy, once before the rounds):")
        out.append("")
        out.append("| payload | conns | req/s | p50 ms | p99 ms | upstream CPU % |")
        out.append("|---|--:|--:|--:|--:|--:|")
        for m in reference:
            out.append(f"| {m['payload']} | {m['connections']} | {m['rps']:.0f} "
                       f"| {m['p50_us'] / 1000:.2f} | {m['p99_us'] / 1000:.2f} "
                       f"| {m['upstream_cpu_pct']:.0f} |")
    return "\n".join(out)


def verdict(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r["config"] != "tapproxy" or "ratio" not in r:
            continue
        target = TARGETS[r["payload"]]
        ok = r["ratio"] >= target
        lines.append(f"- tapproxy {r['payload']} c{r['connections']}: {r['ratio']:.2f} × bare "
                     f"mitmdump (paired median {r['paired_ratio_median']:.2f}); target ≥ "
                     f"{target:.2f}: {'MET' if ok else 'NOT MET'}")
    for r in rows:
        if not r["config"].startswith("tapproxy-w") or "ratio" not in r:
            continue
        target = WORKERS_TARGETS[r["payload"]]
        lines.append(f"- {CONFIGS[r['config']]} {r['payload']} c{r['connections']}: "
                     f"{r['ratio']:.2f} × bare mitmdump (paired median "
                     f"{r['paired_ratio_median']:.2f}); target with all cores ≥ "
                     f"{target:.1f}: {'MET' if r['ratio'] >= target else 'NOT MET'}")
    bare = {(r["payload"], r["connections"]): r for r in rows
            if r["config"] == "tapproxy-mitmproxy"}
    for r in rows:
        d = bare.get((r["payload"], r["connections"]))
        if r["config"] == "tapproxy" and d:
            lines.append(f"- recording's own cost, {r['payload']} c{r['connections']}: (c) is "
                         f"{r['rps_median'] / d['rps_median']:.2f} × (d), the same mitmproxy "
                         f"not recording")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds; each runs every configuration once, in rotated order")
    ap.add_argument("--duration", type=int, default=5, help="seconds measured per cell")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per cell")
    ap.add_argument("--quick", action="store_true",
                    help="2 rounds of 2 s cells (about a minute and a half)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                    help="configurations to measure")
    ap.add_argument("--payloads", nargs="+", choices=list(PAYLOADS), default=list(PAYLOADS),
                    help="response bodies to measure")
    ap.add_argument("--connections", nargs="+", type=int, choices=[c for c, _ in LOADS],
                    default=[c for c, _ in LOADS], help="concurrent connections (wrk -c)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                    help="also measure this proxy command (placeholders {port} {out} "
                         "{confdir} {python} {mitmdump} {tapproxy}), e.g. a variant under test")
    ap.add_argument("--workers", nargs="+", default=[], metavar="N",
                    help="also measure `tapproxy record --workers N` for each N (a number "
                         "or auto), beside the configurations")
    ap.add_argument("--json", type=Path, help="write raw per-round numbers here")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip measuring the upstream alone")
    ap.add_argument("--keep-files", action="store_true",
                    help="keep the temp dir (captures, logs) and print its path")
    ap.add_argument("--upstream", choices=["nginx", "aiohttp"], default="nginx")
    bindir = Path(sys.executable).parent
    ap.add_argument("--mitmdump", default=str(bindir / "mitmdump"))
    ap.add_argument("--tapproxy", default=str(bindir / "tapproxy"))
    ap.add_argument("--wrk", default=shutil.which("wrk"))
    args = ap.parse_args()
    for spec in args.extra:
        name, sep, command = spec.partition("=")
        if not sep or not name or name in CONFIGS:
            ap.error(f"--extra {spec!r}: expected a new NAME=COMMAND")
        CONFIGS[name] = f"(x) {name}"
        EXTRA[name] = command
        args.configs.append(name)
    for n in args.workers:
        name = f"tapproxy-w{n}"
        if n != "auto" and not n.isdigit():
            ap.error(f"--workers {n!r}: expected a number or auto")
        CONFIGS[name] = f"(c) tapproxy record --workers {n}"
        args.configs.append(name)
    if args.quick:
        args.rounds, args.duration = 2, 2
    if not args.wrk:
        ap.error("wrk not found: apt-get install -y wrk")
    for exe in (args.mitmdump, args.tapproxy):
        if not os.access(exe, os.X_OK):
            ap.error(f"{exe}: not executable (run with the project's virtualenv python)")
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if args.upstream == "aiohttp":
        nginx = None
    if nginx is None:
        log("nginx not found: falling back to an aiohttp upstream in a separate process")

    started = dt.datetime.now(dt.UTC)
    revision = tapproxy_revision()
    work = Path(tempfile.mkdtemp(prefix="tapproxy-bench-"))
    upstream = Upstream(work / "upstream")
    confdir = work / "confdir"
    confdir.mkdir()
    rounds: list[dict] = []
    reference: list[dict] = []
    try:
        upstream.start(nginx)
        tools = Tools(args.mitmdump, args.tapproxy, Wrk(args.wrk, work, upstream))
        log(f"upstream {upstream.kind} {upstream.version} on 127.0.0.1:{upstream.port}; "
            f"{tools.wrk.version}; work dir {work}")
        if not args.no_reference:
            for payload in args.payloads:
                for conns, threads in LOADS:
                    if conns not in args.connections:
                        continue
                    u0, t0 = cpu_seconds(upstream.proc.pid), time.monotonic()
                    m = tools.wrk.run(upstream.port, payload, conns, threads,
                                      min(args.duration, 2), absolute=False)
                    m["upstream_cpu_pct"] = (100 * (cpu_seconds(upstream.proc.pid) - u0)
                                             / (time.monotonic() - t0))
                    m.update(payload=payload, connections=conns, threads=threads)
                    reference.append(m)
                    log(f"  upstream alone {payload:>5} c{conns:<2} {m['rps']:9.0f} req/s  "
                        f"p50 {m['p50_us'] / 1000:.2f} ms  CPU {m['upstream_cpu_pct']:.0f}%")
        for rnd in range(args.rounds):
            k = rnd % len(args.configs)
            order = args.configs[k:] + args.configs[:k]  # rotate: no config always goes first
            log(f"round {rnd + 1}/{args.rounds}: {', '.join(order)}")
            for cfg in order:
                rounds.append(run_config_round(cfg, rnd, tools, upstream, confdir, work, args))
    finally:
        upstream.stop()
        if args.keep_files:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    configs = [c for c in CONFIGS if c in args.configs]
    if BASELINE not in configs:
        log("note: bare mitmdump not measured, so no ratios")
    rows = summarize(rounds, configs)
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        exe = exe.relative_to(Path.cwd())
    command = shlex.join([exe.as_posix(), Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    from mitmproxy.version import VERSION as mitmproxy_version

    env = {
        "date": started.isoformat(timespec="seconds"),
        "command": command,
        "wall_s": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mitmproxy": mitmproxy_version,
        "tapproxy": revision,
        "upstream": f"{upstream.kind} {upstream.version}",
        "wrk": tools.wrk.version,
        "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
        "extra": EXTRA,
    }
    table = markdown(rows, reference)
    print(f"Proxy overhead, {env['date']} ({env['cpus']} CPUs, {env['platform']}; "
          f"tapproxy {env['tapproxy']}, mitmproxy {env['mitmproxy']}, Python {env['python']}; "
          f"upstream {env['upstream']}; "
          f"{env['wrk']})")
    print(f"{args.rounds} interleaved rounds × {args.duration} s per cell "
          f"(+{args.warmup} s warm-up); medians over rounds; wall time {elapsed:.0f} s")
    print()
    print(table)
    print()
    for line in verdict(rows):
        print(line)
    for cfg in configs:
        rs = [r for r in rounds if r["config"] == cfg]
        out = [sum(r["output_bytes"].values()) for r in rs]
        per = [r.get("rss_per_process_mib", []) for r in rs]
        medians = [str(round(statistics.median(x))) for x in zip(*per, strict=False)]
        each = f" ({' + '.join(medians)} per process)" if len(medians) > 1 else ""
        print(f"- {CONFIGS[cfg]}: peak RSS median "
              f"{statistics.median(r.get('peak_rss_mib', 0) for r in rs):.0f} MiB{each}, "
              f"time to exit after SIGINT median {statistics.median(r['stop_s'] for r in rs):.2f} s"
              + (f", output {statistics.median(out) / 2**20:.0f} MiB per round" if any(out)
                 else ""))
    caps = [r["capture"] for r in rounds if "capture" in r]
    if caps:
        good = sum(c["records_match"] for c in caps)
        sizes = [r["output_bytes"].get("run.tap", 0) for r in rounds if "capture" in r]
        print(f"- tapproxy captures: records == requests served in {good}/{len(caps)} rounds; "
              f"capture size median {statistics.median(sizes) / 2**20:.0f} MiB per round "
              f"({statistics.median(c['exchanges'] for c in caps):.0f} exchanges)")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "summary": rows, "reference": reference,
                                         "rounds": rounds}, indent=1))
        print(f"- raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
