#!/usr/bin/env python3
"""What naming callers by their process costs, through a fronted listener.

    .venv/bin/python benchmarks/fronting_overhead.py --json benchmarks/fronting.json

`tapproxy record --start svc@PORT=…` starts nginx on a private port and fronts it on
PORT; `wrk` calls PORT with no proxy settings, as a client of a fronted service does.
Two configurations, interleaved round after round (order rotated, each started fresh):

- **on**: caller lookup on (the default: netlink sock_diag + /proc, once per connection),
- **off**: `--no-process-callers` (callers stay peer addresses),

each at 1 and 10 connections, with keep-alive and with a new connection per request
(`Connection: close`: tapproxy closes, wrk reconnects), small JSON responses. The table
gives medians over rounds of req/s, p50 and tapproxy's CPU per request (its lookup
helper's included), and the medians of the paired per-round ratios on/off (req/s and
CPU per request: on a shared,
noisy machine the CPU per request is the steadier measure). The target: no measurable
loss with keep-alive, at most 10 % with a new connection per request. Every round's
capture is read back and the callers counted: with lookup on they are `wrk` (source
`process`), but for requests cut when wrk stopped.

Reuses proxy_overhead.py's nginx upstream, wrk runner and CPU accounting. Needs
`nginx`/`nginx-light` and `wrk` (Debian).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_overhead as po

CONFIGS = {"on": "caller lookup on", "off": "caller lookup off (--no-process-callers)"}
MODES = {"keep-alive": False, "new-conn": True}  # value: send Connection: close
LOADS = ((1, 1), (10, 2))  # (connections, wrk threads)


def nginx_command(nginx: str, root: Path) -> str:
    """The --start COMMAND: nginx serving small.json, its config written for the {port}."""
    www = root / "www"
    www.mkdir(parents=True)
    (www / "small.json").write_bytes(po.SMALL_BODY)
    for p in (root, www, www / "small.json"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # in case nginx drops privileges
    template = root / "nginx.conf.in"
    template.write_text(textwrap.dedent(f"""\
        daemon off;
        master_process off;
        worker_processes 1;
        pid {root}/nginx-@PORT@.pid;
        error_log {root}/nginx-error.log warn;
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            client_body_temp_path {root}/tmp-body;
            proxy_temp_path {root}/tmp-proxy;
            fastcgi_temp_path {root}/tmp-fastcgi;
            uwsgi_temp_path {root}/tmp-uwsgi;
            scgi_temp_path {root}/tmp-scgi;
            types {{ application/json json; }}
            keepalive_timeout 300s;
            keepalive_requests 10000000;
            server {{ listen 127.0.0.1:@PORT@; root {www}; location / {{ }} }}
        }}
        """))
    r = shlex.quote(str(root))
    script = (f"sed s/@PORT@/$0/g {shlex.quote(str(template))} > {r}/nginx-$0.conf && "
              f"exec {shlex.quote(nginx)} -p {r} -e {r}/nginx-error.log -c {r}/nginx-$0.conf")
    return f"sh -c {shlex.quote(script)} {{port}}"


def wrk_scripts(work: Path) -> dict[bool, Path]:
    scripts = {}
    for close in (False, True):
        lua = po._LUA.format(path="/small.json", host="127.0.0.1")
        if close:
            lua = lua.replace('wrk.headers["Host"]', 'wrk.headers["Connection"] = "close"\n'
                              'wrk.headers["Host"]', 1)
        p = work / f"small-{'close' if close else 'keepalive'}.lua"
        p.write_text(lua)
        scripts[close] = p
    return scripts


def wait_for_helper(pid: int, cfg: str, helper: int | None) -> int | None:
    """The lookup helper's PID once it runs (config `on`); RuntimeError if `on` and `off`
    disagree with what runs."""
    deadline = time.monotonic() + 10
    while helper is None and cfg == "on" and time.monotonic() < deadline:
        time.sleep(0.05)  # it starts once mitmproxy runs, maybe just after the port
        helper = lookup_helper(pid)
    if (helper is None) != (cfg == "off"):
        raise RuntimeError(f"{cfg}: lookup helper {'missing' if helper is None else 'running'}")
    return helper


def cells(args):
    """(mode, send Connection: close, connections, wrk threads) of each cell asked for."""
    for mode, close in MODES.items():
        for conns, threads in LOADS:
            if mode in args.modes and conns in args.connections:
                yield mode, close, conns, threads


def lookup_helper(pid: int) -> int | None:
    """PID of tapproxy's caller lookup helper (a child process), if it runs one."""
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmdline = f.read()
            except (OSError, ValueError):
                continue
            if ppid == pid and b"tapproxy.supervisor.processes" in cmdline:
                return int(p)
    return None


def tapproxy_cpu(pid: int, helper: int | None) -> float:
    """CPU seconds of tapproxy and of its lookup helper: the lookup's whole cost."""
    return po.cpu_seconds(pid) + (po.cpu_seconds(helper) if helper else 0.0)


def run_wrk(wrk: str, script: Path, port: int, conns: int, threads: int, seconds: int) -> dict:
    cmd = [wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout=10s", "--latency",
           "-s", str(script), f"http://127.0.0.1:{port}/"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON "):])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
            d["errors"] = sum(d[k] for k in d if k.startswith("err_"))
            return d
    raise RuntimeError(f"wrk gave no result (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def callers_in(capture: Path) -> dict[tuple[str, str, str], int]:
    from tapproxy.capture.format import open_capture
    from tapproxy.capture.model import Exchange

    seen: dict[tuple[str, str, str], int] = {}
    with open_capture(capture) as reader:
        for rec in reader:
            if isinstance(rec, Exchange):
                key = (rec.caller.name, rec.caller.source, "failed" if rec.failed else "ok")
                seen[key] = seen.get(key, 0) + 1
    return seen


def run_round(cfg: str, rnd: int, args, tapproxy: str, start_cmd: str, scripts, confdir: Path,
              work: Path) -> dict:
    out = work / f"r{rnd}-{cfg}"
    out.mkdir()
    port, listen = po.free_port(), po.free_port()
    cmd = [tapproxy, "record", "-o", str(out / "run.tap"), "--listen", f"127.0.0.1:{listen}",
           "--control", "off", "--confdir", str(confdir), "--start", f"svc@{port}={start_cmd}"]
    if cfg == "off":
        cmd.append("--no-process-callers")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=open(out / "stdout.txt", "wb"),  # noqa: SIM115
                            stderr=open(out / "stderr.txt", "wb"))  # noqa: SIM115
    result: dict = {"round": rnd, "config": cfg, "cells": []}
    try:
        po.wait_port(port, proc, f"tapproxy ({cfg})")
        helper = lookup_helper(proc.pid)
        helper = wait_for_helper(proc.pid, cfg, helper)
        for mode, close, conns, threads in cells(args):
            if args.warmup > 0:
                run_wrk(args.wrk, scripts[close], port, conns, threads, args.warmup)
            c0, t0 = tapproxy_cpu(proc.pid, helper), time.monotonic()
            m = run_wrk(args.wrk, scripts[close], port, conns, threads, args.duration)
            wall = time.monotonic() - t0
            m.update(mode=mode, connections=conns,
                     proxy_cpu_us_per_req=1e6 * (tapproxy_cpu(proc.pid, helper) - c0)
                     / max(m["requests"], 1),
                     proxy_cpu_pct=100 * (tapproxy_cpu(proc.pid, helper) - c0) / wall)
            if m["errors"]:
                po.log(f"  WARNING {cfg} {mode} c{conns}: {m['errors']} errors")
            result["cells"].append(m)
            po.log(f"  {CONFIGS[cfg]:<42} {mode:>10} c{conns:<2} {m['rps']:8.1f} req/s  "
                   f"p50 {m['p50_us'] / 1000:6.2f} ms  proxy CPU "
                   f"{m['proxy_cpu_us_per_req']:6.0f} µs/req")
    finally:
        po.stop(proc)
    result["callers"] = {f"{n} ({s}, {f})": c
                         for (n, s, f), c in callers_in(out / "run.tap").items()}
    po.log(f"  callers recorded: {result['callers']}")
    if not args.keep_files:
        shutil.rmtree(out)
    return result


def summarize(rounds: list[dict]) -> list[dict]:
    cells: dict[tuple[str, str, int], list[dict]] = {}
    for r in rounds:
        for c in r["cells"]:
            cells.setdefault((r["config"], c["mode"], c["connections"]), []).append(
                dict(c, round=r["round"]))
    rows = []
    for mode in MODES:
        for conns, _ in LOADS:
            on, off = cells.get(("on", mode, conns), []), cells.get(("off", mode, conns), [])
            if not on or not off:
                continue
            off_by_round = {c["round"]: c for c in off}
            paired = [c["rps"] / off_by_round[c["round"]]["rps"] for c in on
                      if c["round"] in off_by_round]
            cpu_paired = [c["proxy_cpu_us_per_req"]
                          / off_by_round[c["round"]]["proxy_cpu_us_per_req"] for c in on
                          if c["round"] in off_by_round]
            rows.append({
                "mode": mode, "connections": conns, "rounds": len(paired),
                "on_rps": statistics.median(c["rps"] for c in on),
                "off_rps": statistics.median(c["rps"] for c in off),
                "on_p50_ms": statistics.median(c["p50_us"] for c in on) / 1000,
                "off_p50_ms": statistics.median(c["p50_us"] for c in off) / 1000,
                "on_cpu_us": statistics.median(c["proxy_cpu_us_per_req"] for c in on),
                "off_cpu_us": statistics.median(c["proxy_cpu_us_per_req"] for c in off),
                "paired_ratio": statistics.median(paired),
                "paired_min": min(paired), "paired_max": max(paired),
                "cpu_paired_ratio": statistics.median(cpu_paired),
            })
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'mode':<11}{'conns':>5} {'on req/s':>9} {'off req/s':>9} {'on/off':>7} "
          f"{'(min–max)':>13} {'p50 on':>8} {'p50 off':>8} {'CPU µs/req on/off':>18} "
          f"{'CPU on/off':>10}")
    for r in rows:
        print(f"{r['mode']:<11}{r['connections']:>5} {r['on_rps']:9.0f} {r['off_rps']:9.0f} "
              f"{r['paired_ratio']:7.3f} {r['paired_min']:6.3f}–{r['paired_max']:<6.3f} "
              f"{r['on_p50_ms']:6.2f}ms {r['off_p50_ms']:6.2f}ms "
              f"{r['on_cpu_us']:8.0f} / {r['off_cpu_us']:<6.0f} {r['cpu_paired_ratio']:10.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--connections", nargs="+", type=int, default=[c for c, _ in LOADS])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep-files", action="store_true")
    ap.add_argument("--wrk", default=shutil.which("wrk"))
    ap.add_argument("--nginx", default=shutil.which("nginx"))
    args = ap.parse_args()
    if not args.wrk or not args.nginx:
        sys.exit("needs wrk and nginx: apt-get install -y wrk nginx-light")
    tapproxy = str(Path(sys.executable).with_name("tapproxy"))
    with tempfile.TemporaryDirectory(prefix="tapproxy-fronting-") as tmp:
        work = Path(tmp)
        start_cmd = nginx_command(args.nginx, work / "upstream")
        scripts = wrk_scripts(work)
        confdir = work / "conf"
        rounds = []
        order = list(CONFIGS)
        po.log(f"tapproxy {po.tapproxy_revision()}, {os.cpu_count()} CPUs; "
               f"{args.rounds} rounds of {args.duration:g} s cells")
        for rnd in range(args.rounds):
            po.log(f"round {rnd + 1}/{args.rounds}")
            for cfg in order:
                rounds.append(run_round(cfg, rnd, args, tapproxy, start_cmd, scripts, confdir,
                                        work))
            order = order[1:] + order[:1]
    rows = summarize(rounds)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"revision": po.tapproxy_revision(), "rows": rows,
                                         "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
