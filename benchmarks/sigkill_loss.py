"""Records against responses when `tapproxy record` is killed (SIGKILL) under load.

    .venv/bin/python benchmarks/sigkill_loss.py [--rounds 5] [--seconds 3] [--clients 4]

Each round: an aiohttp upstream (its own process) answers small numbered responses,
`--clients` keep-alive clients (threads, `requests`) send through a fresh `tapproxy
record` for `--seconds`, then the recorder is killed with SIGKILL while they are still
sending. The capture is then read back: every response a client received should be in
it, except those the recorder had not yet handed to the OS (the writer batches for at
most 50 ms; docs/capture-format.md, Guarantees). Reported, median over rounds:
responses received, records read, responses missing from the capture, and that loss
as milliseconds of traffic at the measured rate.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from proxy_overhead import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(port: int) -> None:
    from aiohttp import web

    async def numbered(request: web.Request) -> web.Response:
        return web.Response(text=f"response {request.match_info['i']}")

    app = web.Application()
    app.router.add_get("/n/{i}", numbered)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def one_round(tmp: Path, up_port: int, args) -> dict:
    from tapproxy.capture import Exchange, open_capture

    port, out = free_port(), tmp / "run.tap"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tapproxy.cli", "record", "-o", str(out), "--listen",
         f"127.0.0.1:{port}", "--control", "off", "--confdir", str(tmp / "conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proxy, "tapproxy record")
    stop = threading.Event()
    answered: list[list[int]] = [[] for _ in range(args.clients)]

    def client(k: int) -> None:
        with requests.Session() as s:
            s.trust_env, s.proxies = False, {"http": f"http://127.0.0.1:{port}"}
            j = 0
            while not stop.is_set():
                i = k * 10_000_000 + j
                try:
                    r = s.get(f"http://127.0.0.1:{up_port}/n/{i}", timeout=10)
                except requests.RequestException:
                    return
                if r.status_code == 200 and r.text == f"response {i}":
                    answered[k].append(i)
                j += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    proxy.send_signal(signal.SIGKILL)  # while the clients are still sending
    elapsed = time.monotonic() - started
    proxy.wait()
    stop.set()
    for t in threads:
        t.join(30)
    got = {i for a in answered for i in a}
    with open_capture(out) as reader:
        recorded = {int(x.request.path.rsplit("/", 1)[1]) for x in reader
                    if isinstance(x, Exchange) and x.status == 200}
    out.unlink()
    missing = len(got - recorded)
    rate = len(got) / elapsed
    return {"responses": len(got), "records": len(recorded), "missing": missing,
            "missing_ms": 1000 * missing / rate, "rate": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    up_port = free_port()
    up = subprocess.Popen([sys.executable, __file__, "--serve", str(up_port)])
    rows = []
    try:
        wait_port(up_port, up, "upstream")
        with tempfile.TemporaryDirectory(prefix="tapbench-") as d:
            for n in range(args.rounds):
                row = one_round(Path(d), up_port, args)
                rows.append(row)
                print(f"round {n + 1}: {row['responses']} responses, {row['records']} records, "
                      f"{row['missing']} missing ({row['missing_ms']:.1f} ms of traffic at "
                      f"{row['rate']:.0f}/s)", flush=True)
    finally:
        up.terminate()
        up.wait()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\nSIGKILL under load ({args.clients} clients, {args.seconds} s), median of "
          f"{args.rounds}: {med['responses']:.0f} responses, {med['records']:.0f} records, "
          f"{med['missing']:.0f} missing = {med['missing_ms']:.1f} ms of traffic "
          f"(max {max(r['missing_ms'] for r in rows):.1f} ms)")


if __name__ == "__main__":
    main()
