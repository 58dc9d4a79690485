#!/usr/bin/env python3
"""The ways to find the process behind a local TCP connection, each timed on its own.

    .venv/bin/python benchmarks/caller_lookup.py [--time-wait 2000] [--repeat 500]

A client process holds 12 connections to a listener in this process; each way finds the
owner of one of them, `--repeat` times, and the median µs (wall and CPU) is printed.
`--time-wait N` first leaves N connections in TIME_WAIT, as a run with a new connection
per request does, since reading /proc/net/tcp costs in proportion to them.

- sock_diag: the socket's inode by its four-tuple over netlink (what tapproxy does);
- /proc/net/tcp: the same inode by reading and parsing the table;
- owner, hinted: the fd the process last connected through, one readlink (tapproxy's
  common case: a client that reconnects gets the same lowest free fd);
- owner, full scan: every fd of every process, newest PID first (a new client);
- owner, every process: the same for a socket nobody holds, the worst case;
- psutil: `psutil.net_connections()` then matching the four-tuple (if importable);
- lookup: ProcessNamer.lookup, inode + owner + name, as the lookup helper calls it;
- lookup via helper: the same asked of the helper process from an asyncio loop, as the
  recorder does (CallerLookups: the pipe both ways included; CPU of this process and of
  the helper given apart).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_overhead as po

from tapproxy.supervisor.caller_lookups import CallerLookups
from tapproxy.supervisor.processes import ProcessNamer, _socket_inode, socket_owner


def proc_net_tcp_inode(local: tuple, remote: tuple) -> int | None:
    def enc(addr: tuple) -> str:
        raw = socket.inet_pton(socket.AF_INET, addr[0])
        return f"{struct.unpack('<I', raw)[0]:08X}:{addr[1]:04X}"

    want = (enc(local), enc(remote))
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if (p[1], p[2]) == want:
                return int(p[9])
    return None


def timed(f, repeat: int) -> tuple[float, float]:
    """Median wall and CPU µs of one call of f."""
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.thread_time()
        f()
        walls.append(time.perf_counter() - t)
        cpus.append(time.thread_time() - c)
    return statistics.median(walls) * 1e6, statistics.median(cpus) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=500)
    ap.add_argument("--time-wait", type=int, default=0)
    args = ap.parse_args()

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    port = srv.getsockname()[1]
    for _ in range(args.time_wait):  # the server closes first: TIME_WAIT on its side
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = srv.accept()
        s.close()
        c.close()
    code = (f"import socket, time; cs = [socket.create_connection(('127.0.0.1', {port})) "
            "for _ in range(12)]; print('ok', flush=True); time.sleep(600)")
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    client.stdout.readline()
    conn, peer = srv.accept()
    for _ in range(11):
        srv.accept()
    sockname = conn.getsockname()
    inode = _socket_inode(peer, sockname)
    owner = socket_owner(inode)
    assert owner is not None and owner[0] == client.pid, owner
    namer = ProcessNamer()
    namer.lookup(peer, sockname)  # names the client once, as after its first connection
    with open("/proc/net/tcp") as f:
        rows = sum(1 for _ in f) - 1
    procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
    print(f"{rows} rows in /proc/net/tcp, {procs} processes; median of {args.repeat}")

    ways = {
        "sock_diag inode": lambda: _socket_inode(peer, sockname),
        "/proc/net/tcp inode": lambda: proc_net_tcp_inode(peer, sockname),
        "owner, hinted": lambda: socket_owner(inode, {client.pid: owner[1]}),
        "owner, full scan": lambda: socket_owner(inode),
        "owner, every process": lambda: socket_owner(1),  # no such socket: the worst case
        "lookup": lambda: namer.lookup(peer, sockname),
    }
    try:
        import psutil

        def by_psutil():
            for c in psutil.net_connections("tcp4"):
                if c.laddr and tuple(c.laddr) == peer and c.raddr and tuple(c.raddr) == sockname:
                    return c.pid
            return None

        assert by_psutil() == client.pid
        ways["psutil.net_connections"] = by_psutil
    except ImportError:
        print("(psutil not importable: not measured)")
    for name, f in ways.items():
        repeat = 50 if any(w in name for w in ("scan", "every", "psutil")) else args.repeat
        wall, cpu = timed(f, repeat)
        print(f"{name:<24} {wall:9.1f} µs wall {cpu:9.1f} µs CPU")

    class Client:  # what CallerLookups reads of a mitmproxy client connection
        def __init__(self) -> None:
            self.peername, self.sockname = peer, sockname

    async def via_helper() -> tuple[float, float, float]:
        lookups = CallerLookups()
        lookups.open()
        first = Client()
        lookups.start(first)
        await lookups.pending(first)  # the helper has started and named the client
        assert lookups.get(first).name == namer.lookup(peer, sockname)
        h0 = po.cpu_seconds(lookups.helper_pid)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(args.repeat):
            c = Client()
            lookups.start(c)
            await lookups.pending(c)
        wall = (time.perf_counter() - t0) / args.repeat * 1e6
        cpu = (time.process_time() - c0) / args.repeat * 1e6
        helper_cpu = (po.cpu_seconds(lookups.helper_pid) - h0) / args.repeat * 1e6
        lookups.close()
        return wall, cpu, helper_cpu

    wall, cpu, helper_cpu = asyncio.run(via_helper())
    print(f"{'lookup via helper':<24} {wall:9.1f} µs wall {cpu:9.1f} µs CPU here "
          f"+ {helper_cpu:.1f} µs in the helper (means)")
    client.kill()


if __name__ == "__main__":
    main()
