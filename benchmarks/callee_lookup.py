#!/usr/bin/env python3
"""What naming loopback callees (and callers) by their process costs, through the forward proxy.

    .venv/bin/python benchmarks/callee_lookup.py --rounds 5 --json callee.json

`tapproxy record --listen 127.0.0.1:P` (no `--start`) runs as a plain forward proxy; nginx
serves a small JSON on another loopback port; `wrk` sends absolute-form requests for it to
the proxy, with `Proxy-Authorization: Basic` for user `bench` (so the caller is named by
its proxy user, as services are). The callee, nginx on 127.0.0.1, is named by the process
that owns the socket which accepted tapproxy's upstream connection, looked up once per
upstream connection. Two configurations, interleaved round after round (order rotated,
each proxy started fresh):

- **on**: the default: caller and callee process lookups,
- **off**: `--no-process-callers` (no lookups: the callee stays `127.0.0.1`, source `host`),

each at 1 and 10 connections, with keep-alive and with a new connection per request
(`Connection: close`, which tapproxy passes on: nginx closes the upstream connection too,
so every request costs a caller and a callee lookup). The table gives medians over rounds
of req/s, p50 and tapproxy's CPU per request (its lookup helper's included), and the
medians of the paired per-round ratios on/off (req/s and CPU per request). The targets,
as for callers: no measurable loss with keep-alive, at most 10 % of requests/s with a
new connection per request.

Every round's capture is read back and its callees counted: with lookups on they must
be nginx by its process (source `process`, name `nginx` or `nginx#N`, nginx's PID), with
them off `127.0.0.1` (source `host`); the script fails loudly otherwise. Exchanges that
failed (requests cut when wrk stopped) are counted apart and tolerated, up to the
connections wrk had open at each stop.

Reuses proxy_overhead.py's nginx upstream and helpers and fronting_overhead.py's wrk
runner, CPU accounting and table. Needs `nginx`/`nginx-light` and `wrk` (Debian:
`apt-get install -y nginx-light wrk`).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fronting_overhead as fo
import proxy_overhead as po

CONFIGS = {"on": "process lookups on (default)", "off": "off (--no-process-callers)"}
MODES = fo.MODES  # {"keep-alive": False, "new-conn": True}: value = send Connection: close
LOADS = fo.LOADS  # ((connections, wrk threads), ...)
CALLER = "bench"
AUTH = "Basic " + base64.b64encode(f"{CALLER}:".encode()).decode()
NGINX_NAME = re.compile(r"nginx(#\d+)?")


def wrk_scripts(work: Path, url: str, host: str) -> dict[bool, Path]:
    """wrk scripts sending absolute-form GETs of `url` to the proxy (po._LUA's reporter)."""
    scripts = {}
    for close in (False, True):
        headers = {"Host": host, "Proxy-Authorization": AUTH}
        if close:
            headers["Connection"] = "close"
        lua = po._LUA.format(path=url, host=host) + "local headers = {\n" + "".join(
            f'  ["{k}"] = "{v}",\n' for k, v in headers.items()) + "}\n" + (
            f'local req = wrk.format("GET", "{url}", headers)\n'
            "request = function()\n  return req\nend\n")
        p = work / f"forward-{'close' if close else 'keepalive'}.lua"
        p.write_text(lua)
        scripts[close] = p
    return scripts


def check_proxy(port: int, url: str, body: bytes) -> None:
    """One request as wrk sends it, before measuring: the proxy forwards it as expected."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", url, headers={"Host": url.split("/")[2], "Proxy-Authorization": AUTH})
        r = conn.getresponse()
        got = r.read()
    finally:
        conn.close()
    if r.status != 200 or got != body:
        raise RuntimeError(f"proxy on {port}: status {r.status}, {len(got)} bytes "
                           f"(expected 200, {len(body)} bytes)")


def parties_in(capture: Path) -> dict:
    """Callees and callers of a capture's exchanges, counted by (name, source, ok/failed)."""
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import Exchange

    callees: dict[tuple, int] = {}
    callers: dict[tuple, int] = {}
    pids: dict[int | None, int] = {}
    with open_capture(capture) as reader:
        for rec in reader:
            if isinstance(rec, Exchange):
                state = "failed" if rec.failed else "ok"
                k = (rec.callee.name, rec.callee.source, state)
                callees[k] = callees.get(k, 0) + 1
                k = (rec.caller.name, rec.caller.source, state)
                callers[k] = callers.get(k, 0) + 1
                pids[rec.callee.pid] = pids.get(rec.callee.pid, 0) + 1
        truncated = reader.truncated
    return {"callees": callees, "callers": callers, "callee_pids": pids, "truncated": truncated}


def callee_expected(cfg: str, name: str, source: str) -> bool:
    if cfg == "on":
        return source == "process" and bool(NGINX_NAME.fullmatch(name))
    return (name, source) == ("127.0.0.1", "host")


def check_parties(cfg: str, parties: dict, nginx_pid: int, cut_allowed: int) -> list[str]:
    """What is wrong with the round's callees and callers (empty: as expected)."""
    problems = []
    callees = parties["callees"]
    ok = sum(n for k, n in callees.items() if k[2] == "ok")
    failed = sum(n for k, n in callees.items() if k[2] == "failed")
    wrong_ok = {k: n for k, n in callees.items()
                if k[2] == "ok" and not callee_expected(cfg, k[0], k[1])}
    if not ok:
        problems.append("no successful exchange recorded")
    if wrong_ok:
        problems.append(f"callees of successful exchanges not as expected: {wrong_ok}")
    if failed > cut_allowed:
        problems.append(f"{failed} failed exchanges, more than the {cut_allowed} that wrk "
                        f"may have cut as it stopped")
    other_pids = {p: n for p, n in parties["callee_pids"].items()
                  if p is not None and p != nginx_pid}
    if other_pids:
        problems.append(f"callees named by a PID other than nginx's {nginx_pid}: {other_pids}")
    bad_callers = {k: n for k, n in parties["callers"].items()
                   if k[2] == "ok" and k[0] != CALLER}
    if bad_callers:
        problems.append(f"callers not named {CALLER!r}: {bad_callers}")
    if parties["truncated"]:
        problems.append("capture truncated")
    return problems


def _labelled(counts: dict[tuple, int]) -> dict[str, int]:
    return {f"{name} ({source}, {state})": n
            for (name, source, state), n in sorted(counts.items())}


def run_round(cfg: str, rnd: int, args, tapproxy: str, upstream: po.Upstream, scripts,
              confdir: Path, work: Path) -> dict:
    out = work / f"r{rnd}-{cfg}"
    out.mkdir()
    port = po.free_port()
    cmd = [tapproxy, "record", "-o", str(out / "run.tap"), "--listen", f"127.0.0.1:{port}",
           "--control", "off", "--confdir", str(confdir)]
    if cfg == "off":
        cmd.append("--no-process-callers")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=open(out / "stdout.txt", "wb"),  # noqa: SIM115
                            stderr=open(out / "stderr.txt", "wb"))  # noqa: SIM115
    result: dict = {"round": rnd, "config": cfg, "cells": []}
    cut_allowed = 0  # requests that may be cut at the end of each wrk run
    try:
        po.wait_port(port, proc, f"tapproxy ({cfg})")
        check_proxy(port, upstream.url("small"), upstream.bodies["small"])
        helper = fo.lookup_helper(proc.pid)
        helper = fo.wait_for_helper(proc.pid, cfg, helper)
        for mode, close, conns, threads in fo.cells(args):
            if args.warmup > 0:
                fo.run_wrk(args.wrk, scripts[close], port, conns, threads, args.warmup)
                cut_allowed += conns
            c0, t0 = fo.tapproxy_cpu(proc.pid, helper), time.monotonic()
            m = fo.run_wrk(args.wrk, scripts[close], port, conns, threads, args.seconds)
            wall = time.monotonic() - t0
            cpu = fo.tapproxy_cpu(proc.pid, helper) - c0
            cut_allowed += conns
            m.update(mode=mode, connections=conns,
                     proxy_cpu_us_per_req=1e6 * cpu / max(m["requests"], 1),
                     proxy_cpu_pct=100 * cpu / wall)
            if m["errors"]:
                po.log(f"  WARNING {cfg} {mode} c{conns}: {m['errors']} errors")
            result["cells"].append(m)
            po.log(f"  {CONFIGS[cfg]:<30} {mode:>10} c{conns:<2} {m['rps']:8.1f} req/s  "
                   f"p50 {m['p50_us'] / 1000:6.2f} ms  proxy CPU "
                   f"{m['proxy_cpu_us_per_req']:6.0f} µs/req")
    finally:
        po.stop(proc)
    parties = parties_in(out / "run.tap")
    result["callees"] = _labelled(parties["callees"])
    result["callers"] = _labelled(parties["callers"])
    result["problems"] = check_parties(cfg, parties, upstream.proc.pid, cut_allowed)
    po.log(f"  callees recorded: {result['callees']}")
    po.log(f"  callers recorded: {result['callers']}")
    for p in result["problems"]:
        po.log(f"  PROBLEM ({cfg}, round {rnd + 1}): {p}")
    if result["problems"]:
        args.keep_files = True  # the evidence stays
        po.log(f"  kept {out}")
    elif not args.keep_files:
        shutil.rmtree(out)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5, help="seconds measured per cell")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per cell")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--connections", nargs="+", type=int, choices=[c for c, _ in LOADS],
                    default=[c for c, _ in LOADS])
    ap.add_argument("--json", type=Path, help="write the summary and raw rounds here")
    ap.add_argument("--keep-files", action="store_true")
    ap.add_argument("--wrk", default=shutil.which("wrk"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None))
    args = ap.parse_args()
    if not args.wrk or not args.nginx:
        ap.error("needs wrk and nginx: apt-get install -y nginx-light wrk")
    tapproxy = str(Path(sys.executable).with_name("tapproxy"))
    if not os.access(tapproxy, os.X_OK):
        ap.error(f"{tapproxy}: not executable (run with the project's virtualenv python)")

    work = Path(tempfile.mkdtemp(prefix="tapproxy-callee-"))
    upstream = po.Upstream(work / "upstream")
    confdir = work / "conf"
    rounds: list[dict] = []
    started = time.time()
    try:
        upstream.start(args.nginx)
        if upstream.kind != "nginx":
            raise RuntimeError(f"upstream is {upstream.kind}, not nginx")
        url = upstream.url("small")
        scripts = wrk_scripts(work, url, f"127.0.0.1:{upstream.port}")
        po.log(f"tapproxy {po.tapproxy_revision()}, {os.cpu_count()} CPUs, load average "
               f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; nginx {upstream.version} "
               f"(PID {upstream.proc.pid}) at {url}; {args.rounds} rounds of "
               f"{args.seconds} s cells; work dir {work}")
        order = list(CONFIGS)
        for rnd in range(args.rounds):
            po.log(f"round {rnd + 1}/{args.rounds}: {', '.join(order)}")
            for cfg in order:
                rounds.append(run_round(cfg, rnd, args, tapproxy, upstream, scripts, confdir,
                                        work))
            order = order[1:] + order[:1]
    finally:
        upstream.stop()
        if args.keep_files:
            po.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = fo.summarize(rounds)
    print(f"Callee (and caller) process lookups through the forward proxy: tapproxy "
          f"{po.tapproxy_revision()}, {os.cpu_count()} CPUs, {args.rounds} rounds × "
          f"{args.seconds} s per cell (+{args.warmup} s warm-up), wall "
          f"{time.time() - started:.0f} s; medians over rounds")
    fo.print_table(rows)
    print()
    for cfg in CONFIGS:
        totals: dict[str, int] = {}
        for r in rounds:
            if r["config"] == cfg:
                for k, n in r["callees"].items():
                    totals[k] = totals.get(k, 0) + n
        print(f"callees, {CONFIGS[cfg]}: {totals}")
    problems = [f"{r['config']} round {r['round'] + 1}: {p}" for r in rounds
                for p in r["problems"]]
    if args.json:
        args.json.write_text(json.dumps({"revision": po.tapproxy_revision(),
                                         "nginx": upstream.version, "rows": rows,
                                         "rounds": rounds, "problems": problems}, indent=1))
    if problems:
        print("\nFAILED: callees not named as expected:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("callees named as expected in every round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
