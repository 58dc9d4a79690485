"""One large response through `tapproxy record`: the proxy's memory and time to first byte.

    .venv/bin/python benchmarks/large_body.py [--size-mb 300] [--rounds 3] [--source DIR]
        [--max-body SIZE] [--requests N]

An aiohttp upstream (its own process) serves one file of `--size-mb` random bytes with a
Content-Length (sendfile); curl fetches it through a fresh `tapproxy record` each round.
Reported, median over rounds: the proxy's peak RSS (VmHWM) and its RSS after the
response (once the exchange is recorded, 2 s later), curl's time to the first byte and
to the last, and what the capture holds of the body.

`--source DIR` runs tapproxy's code from DIR instead (e.g. `git archive <rev> tapproxy |
tar -x -C DIR`), to measure another revision with the same interpreter and packages.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxy_overhead import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(port: int, path: str) -> None:
    """The upstream: GET /big answers the file with its Content-Length."""
    from aiohttp import web

    async def big(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    app = web.Application()
    app.router.add_get("/big", big)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def tapproxy_command(source: str | None) -> list[str]:
    if source is None:
        return [sys.executable, "-m", "tapproxy.cli"]
    boot = (f"import sys; sys.path.insert(0, {source!r}); "
            "from tapproxy.cli import main; main()")
    return [sys.executable, "-c", boot]


def one_round(tmp: Path, up_port: int, digest: bytes, size: int, args) -> dict:
    port, out = free_port(), tmp / "run.tap"
    cmd = [*tapproxy_command(args.source), "record", "-o", str(out), "--listen",
           f"127.0.0.1:{port}", "--control", "off", "--confdir", str(tmp / "conf"),
           *(["--max-body", args.max_body] if args.max_body else [])]
    proxy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proxy, "tapproxy record")
        time.sleep(0.5)
        base = status(proxy.pid)["VmRSS"]
        # One keep-alive connection; --requests fetches of the same URL, one after another.
        curl = subprocess.run(
            ["curl", "-sS", "-x", f"http://127.0.0.1:{port}", "-w",
             "%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n",
             *[a for _ in range(args.requests)
               for a in ("-o", "/dev/null", f"http://127.0.0.1:{up_port}/big")]],
            capture_output=True, text=True, check=True)
        fetches = [line.split() for line in curl.stdout.splitlines()]
        assert all((c, int(g)) == ("200", size) for c, g, _, _ in fetches), curl.stdout
        ttfb = statistics.median(float(f[2]) for f in fetches)
        total = statistics.median(float(f[3]) for f in fetches)
        time.sleep(2)  # the record is written; memory mitmproxy let go of is given back
        after = status(proxy.pid)
    finally:
        proxy.send_signal(signal.SIGINT)
        err = proxy.communicate(timeout=60)[1]
    assert proxy.returncode == 0, err
    from tapproxy.capture import Exchange, open_capture

    with open_capture(out) as reader:
        x = [r for r in reader if isinstance(r, Exchange)][-1]
    r = x.response
    whole = r.body_size is None if hasattr(r, "body_size") else True
    kept = len(r.body)
    same = hashlib.sha256(r.body).digest() == digest if whole else r.body_sha256 == digest
    out.unlink()
    return {"base": base, "peak": after["VmHWM"], "after": after["VmRSS"],
            "ttfb": ttfb, "total": total, "kept": kept, "hash_ok": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--source", help="run tapproxy's code from this directory")
    ap.add_argument("--max-body", help="pass --max-body to tapproxy record")
    ap.add_argument("--requests", type=int, default=1, help="fetches per round (keep-alive)")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    size = args.size_mb << 20
    with tempfile.TemporaryDirectory(prefix="tapbench-") as d:
        tmp = Path(d)
        body = tmp / "big.bin"
        h = hashlib.sha256()
        with open(body, "wb") as f:
            for _ in range(args.size_mb):
                chunk = os.urandom(1 << 20)
                h.update(chunk)
                f.write(chunk)
        up_port = free_port()
        up = subprocess.Popen([sys.executable, __file__, "--serve", str(up_port), str(body)])
        try:
            wait_port(up_port, up, "upstream")
            rows = []
            for i in range(args.rounds):
                row = one_round(tmp, up_port, h.digest(), size, args)
                rows.append(row)
                print(f"round {i + 1}: " + ", ".join(
                    f"{k} {v / 2**20:.0f} MiB" if k in ("base", "peak", "after", "kept")
                    else f"{k} {v}" for k, v in row.items()), flush=True)
        finally:
            up.terminate()
            up.wait()
    med = {k: statistics.median(r[k] for r in rows) for k in ("base", "peak", "after",
                                                               "ttfb", "total")}
    print(f"\n{args.size_mb} MiB response x {args.requests}, tapproxy from "
          f"{args.source or ROOT}, max-body {args.max_body or 'default'}, "
          f"median of {args.rounds}:")
    print(f"  proxy RSS before {med['base'] / 2**20:.0f} MiB, peak {med['peak'] / 2**20:.0f} "
          f"MiB, after {med['after'] / 2**20:.0f} MiB")
    print(f"  curl: first byte after {med['ttfb']:.3f} s, whole body after {med['total']:.3f} s"
          " (median fetch)")
    print(f"  capture keeps {rows[0]['kept'] / 2**20:.1f} MiB of the body; whole-body hash "
          f"matches: {all(r['hash_ok'] for r in rows)}")


if __name__ == "__main__":
    main()
