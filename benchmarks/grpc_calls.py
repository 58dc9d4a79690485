#!/usr/bin/env python3
"""Unary gRPC calls per second: direct, through bare mitmdump (TLS, the only gRPC it
carries) and through `tapproxy record` (TLS, and h2c in a CONNECT tunnel and to a reverse
listener), side by side.

    .venv/bin/python benchmarks/grpc_calls.py [--rounds 5] [--seconds 5]

The Echo service of tests/grpc/echo.proto runs in its own process (TLS and plaintext
ports, a test CA from trustme); each proxy runs in its own process, started fresh each
round. The client (grpcio, in this process) makes unary calls with a small message for
`--seconds`, one caller at a time and then `--concurrency` callers sharing the channel
(HTTP/2 multiplexes them on one connection). The configurations are interleaved within
every round, their order rotated; the table gives medians over the rounds and each one's
share of the direct figure over the same transport. Needs the test extras (grpcio,
grpcio-tools, trustme).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import grpc
import trustme
from proxy_overhead import free_port, log, wait_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

CONFIGS = {
    "direct-tls": "direct, TLS",
    "mitmdump-tls": "bare mitmdump, TLS (CONNECT)",
    "tapproxy-tls": "tapproxy record, TLS (CONNECT)",
    "direct-h2c": "direct, h2c",
    "tapproxy-h2c-connect": "tapproxy record, h2c in CONNECT",
    "tapproxy-h2c-reverse": "tapproxy record, h2c reverse listener",
}

SERVER = textwrap.dedent("""\
    import sys
    from concurrent import futures
    import grpc
    sys.path.insert(0, sys.argv[1])
    import echo_pb2, echo_pb2_grpc

    class Echo(echo_pb2_grpc.EchoServicer):
        def Unary(self, request, context):
            return echo_pb2.Resp(text=request.text, index=request.count)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    key, cert = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
    tls = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    plain = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(tls, plain, flush=True)
    server.wait_for_termination()
    """)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Bench:
    def __init__(self, work: Path) -> None:
        from grpc_tools import protoc

        self.work = work
        stubs = work / "stubs"
        stubs.mkdir()
        proto_dir = ROOT / "tests" / "grpc"
        if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={stubs}",
                        f"--grpc_python_out={stubs}", str(proto_dir / "echo.proto")]):
            raise RuntimeError("protoc failed")
        sys.path.insert(0, str(stubs))
        self.pb2 = importlib.import_module("echo_pb2")
        self.pb2_grpc = importlib.import_module("echo_pb2_grpc")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca = work / "upstream-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        cert.private_key_pem.write_to_path(str(work / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
        self.confdir = work / "mitmconf"
        self.server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(stubs), str(work / "key.pem"),
             str(work / "cert.pem")], stdout=subprocess.PIPE, text=True)
        self.tls_port, self.plain_port = map(int, self.server.stdout.readline().split())
        subprocess.run([str(BIN / "tapproxy"), "env", "--confdir", str(self.confdir)],
                       check=True, capture_output=True)  # creates the CA both proxies use
        self.proxy_ca = (self.confdir / "mitmproxy-ca-cert.pem").read_bytes()

    def close(self) -> None:
        self.server.terminate()  # grpc's server thread prints a traceback on SIGINT
        self.server.wait(30)

    def start_proxy(self, cfg: str) -> tuple[subprocess.Popen | None, int, int]:
        """(process, forward port, reverse port) for a configuration (no process: direct)."""
        if cfg.startswith("direct"):
            return None, 0, 0
        port, reverse = free_port(), free_port()
        if cfg.startswith("mitmdump"):
            cmd = [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "--listen-port",
                   str(port), "--set", f"confdir={self.confdir}",
                   "--set", f"ssl_verify_upstream_trusted_ca={self.ca}"]
        else:
            cmd = [str(BIN / "tapproxy"), "record", "-o", str(self.work / f"{cfg}.tap"),
                   "--listen", f"127.0.0.1:{port}", "--control", "off",
                   "--confdir", str(self.confdir), "--upstream-ca", str(self.ca),
                   "--reverse", f"echo=http://127.0.0.1:{self.plain_port}@{reverse}"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_port(port, proc, cfg)
        if not cfg.startswith("mitmdump"):
            wait_port(reverse, proc, cfg)
        return proc, port, reverse

    def channel(self, cfg: str, port: int, reverse: int) -> grpc.Channel:
        via = [("grpc.http_proxy", f"http://bench:tap@127.0.0.1:{port}")]
        tls_target, plain_target = f"127.0.0.1:{self.tls_port}", f"127.0.0.1:{self.plain_port}"
        if cfg == "direct-tls":
            return grpc.secure_channel(tls_target, grpc.ssl_channel_credentials(
                self.ca.read_bytes()))
        if cfg == "direct-h2c":
            return grpc.insecure_channel(plain_target)
        if cfg.endswith("-tls"):
            return grpc.secure_channel(tls_target, grpc.ssl_channel_credentials(
                self.proxy_ca), options=via)
        if cfg == "tapproxy-h2c-connect":
            return grpc.insecure_channel(plain_target, options=via)
        return grpc.insecure_channel(f"127.0.0.1:{reverse}")

    def calls_per_second(self, channel: grpc.Channel, seconds: float, callers: int) -> float:
        unary = self.pb2_grpc.EchoStub(channel).Unary
        req = self.pb2.Req(text="benchmark payload", count=7)
        for _ in range(50):  # warm-up: connection, TLS, HTTP/2 settings
            unary(req, timeout=10)
        counts = [0] * callers
        stop_at = time.monotonic() + seconds

        def caller(i: int) -> None:
            n = 0
            while time.monotonic() < stop_at:
                unary(req, timeout=10)
                n += 1
            counts[i] = n

        t0 = time.monotonic()
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    loads = (1, args.concurrency)
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            configs = list(CONFIGS)
            for rnd in range(args.rounds):
                order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
                for cfg in order:
                    proc, port, reverse = bench.start_proxy(cfg)
                    try:
                        with bench.channel(cfg, port, reverse) as ch:
                            for callers in loads:
                                v = bench.calls_per_second(ch, args.seconds, callers)
                                results.setdefault((cfg, callers), []).append(v)
                                log(f"round {rnd + 1} {cfg} ×{callers}: {v:.0f} calls/s")
                    finally:
                        if proc is not None:
                            stop(proc)
        finally:
            bench.close()

    print(f"\nUnary gRPC calls/s, medians of {args.rounds} rounds of {args.seconds:g} s "
          f"(python {sys.version.split()[0]}, grpcio {grpc.__version__})\n")
    head = "| configuration | " + " | ".join(f"{n} caller{'s' * (n > 1)}" for n in loads)
    print(head + " |\n|---|" + "---:|" * len(loads))
    for cfg, label in CONFIGS.items():
        base = "direct-tls" if cfg.endswith("tls") else "direct-h2c"
        cells = []
        for n in loads:
            med = statistics.median(results[cfg, n])
            share = med / statistics.median(results[base, n])
            cells.append(f"{med:,.0f}" + ("" if cfg == base else f" ({share:.2f}×)"))
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
