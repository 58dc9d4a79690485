"""Memory of a long raw TCP tunnel: tapproxy keeps counts and the first bytes only.

Starts `tapproxy record` (and, for comparison, bare `mitmdump -q`, which keeps every
chunk of a TCP flow in memory until the connection ends), opens one CONNECT tunnel to
a loopback server that speaks first and streams MiB after MiB, and samples the proxy's
resident memory (VmRSS) after each step. Run from the repository root:

    .venv/bin/python benchmarks/tunnel_memory.py [--mib 256] [--rounds 3]

Prints, per proxy, the median RSS growth between the first step and each later one.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proxy_overhead import free_port

BIN = Path(sys.executable).parent
CHUNK = b"\xa5" * 65536


def stream_server(total: int) -> int:
    """A server that speaks first: `total` bytes, then it closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                sent = 0
                while sent < total:
                    conn.sendall(CHUNK)
                    sent += len(CHUNK)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def one_round(cmd: list[str], port: int, server_port: int, steps: list[int]) -> list[int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"CONNECT 127.0.0.1:{server_port} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        got, samples = 0, []
        for mib in steps:
            while got < mib << 20:
                data = s.recv(1 << 20)
                if not data:
                    raise RuntimeError("tunnel closed early")
                got += len(data)
            time.sleep(0.3)  # let the proxy's event loop settle before sampling
            samples.append(rss_kib(proc.pid))
        s.close()
        return samples
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="MiB through the tunnel")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    steps = [16, *(m for m in (64, 128, 256, 512, 1024) if m < args.mib), args.mib]
    server_port = stream_server((args.mib + 1) << 20)
    with tempfile.TemporaryDirectory() as tmp:
        confdir = Path(tmp) / "conf"
        proxies = {
            "tapproxy record": lambda p: [str(BIN / "tapproxy"), "record", "-o",
                                          f"{tmp}/run.tap", "--listen", f"127.0.0.1:{p}",
                                          "--control", "off", "--confdir", str(confdir)],
            "mitmdump -q": lambda p: [str(BIN / "mitmdump"), "-q", "--listen-host",
                                      "127.0.0.1", "-p", str(p), "--set",
                                      f"confdir={confdir}"],
        }
        for name, make in proxies.items():
            growth: list[list[int]] = []
            for _ in range(args.rounds):
                port = free_port()
                samples = one_round(make(port), port, server_port, steps)
                growth.append([s - samples[0] for s in samples])
            medians = [statistics.median(g[i] for g in growth) for i in range(len(steps))]
            cells = ", ".join(f"{m} MiB: +{kib / 1024:.1f} MiB"
                              for m, kib in zip(steps[1:], medians[1:], strict=True))
            print(f"{name:<16} RSS growth after the first {steps[0]} MiB — {cells}")


if __name__ == "__main__":
    main()
