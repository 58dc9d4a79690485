"""What `pytest --tapproxy` adds to a test run's wall time (run by hand).

Generates a suite of N tests (default 200) that each send one request to a small
aiohttp service the suite starts in a thread, and runs it, interleaved round by round
(the machine is shared and noisy), four ways:

    direct          the requests go straight to the service
    mitmdump        through a bare `mitmdump` (started once, outside the timing)
    --tapproxy      through the embedded recording proxy
    --tapproxy-url  through a running `tapproxy record` (started once), test cases
                    opened and closed through its control API

Each test reads its proxy from a fixture (`tapproxy.env` under the plugin, as a
suite's tests do). Printed: each way's median wall time, and the median time from the
first test's setup to the last test's teardown (the test loop: no start-up, no
shutdown, no merge). Per-test overhead = (tapproxy - mitmdump) / N on the loop time.
Proxy start-up: the embedded proxy's `start()` (and its import) timed on its own;
`start s`, pytest's session start to the first test; and `tapproxy record` from its
start until it listens, beside bare `mitmdump`. The CPU time of the test loop (the
pytest process's, and the proxy process's when it runs apart) is printed too: on a
shared machine it varies much less than wall time.

    .venv/bin/python benchmarks/pytest_overhead.py [--tests 200] [--rounds 3]
        [--baseline DIR] [--profile OUT]

`--baseline DIR` adds a `--tapproxy` run with the tapproxy package found in DIR (e.g.
`git archive main tapproxy | tar -x -C DIR`). `--profile OUT` runs the `--tapproxy`
suite once more under cProfile and prints the plugin's top 10 by cumulative time
(with `--baseline`, the baseline's too).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFTEST = '''
import json, os, threading, asyncio, time
import pytest
from aiohttp import web

_T = {}

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session):
    _T["session"] = time.perf_counter()
    return (yield)

def pytest_runtest_setup(item):
    if "first" not in _T:
        _T["first"], _T["cpu0"] = time.perf_counter(), time.process_time()

def pytest_runtest_logfinish(nodeid, location):
    _T["last"], _T["cpu1"] = time.perf_counter(), time.process_time()

def pytest_unconfigure(config):
    if os.environ.get("BENCH_TIMES") and "last" in _T:
        with open(os.environ["BENCH_TIMES"], "w") as f:
            json.dump({"loop": _T["last"] - _T["first"], "cpu": _T["cpu1"] - _T["cpu0"],
                       "start": _T["first"] - _T["session"]}, f)

async def item(request):
    return web.json_response({"n": request.match_info["n"]})

@pytest.fixture(scope="session")
def service():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    async def start():
        app = web.Application()
        app.router.add_get("/item/{n}", item)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]
    port = asyncio.run_coroutine_threadsafe(start(), loop).result()
    return f"http://127.0.0.1:{port}"

@pytest.fixture  # per test, as a suite reads tapproxy.env in each test
def proxies(request):
    if request.config.getoption("tapproxy") or request.config.getoption("tapproxy_url"):
        return {"http": request.getfixturevalue("tapproxy").env["HTTP_PROXY"]}
    if os.environ.get("BENCH_PROXY"):
        return {"http": os.environ["BENCH_PROXY"]}
    return {}
'''

TEST = '''
import pytest, requests

@pytest.mark.parametrize("n", range({n}))
def test_item(service, proxies, n):
    r = requests.get(f"{{service}}/item/{{n}}", proxies=proxies, timeout=10)
    assert r.json() == {{"n": str(n)}}
'''

STARTUP = '''
import sys, time, json
t0 = time.perf_counter()
import tapproxy.proxy.runner
from tapproxy.proxy.embedded import BackgroundProxy
from tapproxy.supervisor.fronting import free_loopback_port
from tapproxy.supervisor.options import Address, RecordOptions
t1 = time.perf_counter()
from pathlib import Path
opts = RecordOptions(output=Path(sys.argv[1]), listen=Address("127.0.0.1", free_loopback_port()),
                     control=Address("127.0.0.1", 0), confdir=Path(sys.argv[2]))
p = BackgroundProxy(opts)
p.start()
t2 = time.perf_counter()
p.stop()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "start": t2 - t1, "stop": t3 - t2}))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


def _cpu(pid: int | None) -> float:
    """CPU seconds process `pid` has used (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(suite: Path, args: list[str], env: dict[str, str] | None = None,
        package: Path | None = None, prefix: list[str] | None = None,
        proxy_pid: int | None = None) -> dict[str, float]:
    """One run of the suite: its wall time, the test loop's wall and CPU time (the pytest
    process's, with the proxy's when it runs apart), and session start to first test."""
    times = suite / "times.json"
    times.unlink(missing_ok=True)
    env = {**os.environ, **(env or {}), "BENCH_TIMES": str(times)}
    if package:  # PYTHONPATH comes before the editable install's finder
        env["PYTHONPATH"] = str(package)
    t0, cpu0 = time.perf_counter(), _cpu(proxy_pid)
    r = subprocess.run([sys.executable, *(prefix or []), "-m", "pytest", "-q",
                        "-p", "no:cacheprovider", "-p", "no:randomly", *args],
                       cwd=suite, capture_output=True, text=True, env=env)
    elapsed, proxy_cpu = time.perf_counter() - t0, _cpu(proxy_pid) - cpu0
    if r.returncode != 0:
        sys.exit(f"the suite failed ({' '.join(args) or 'plain'}):\n{r.stdout}\n{r.stderr}")
    t = json.loads(times.read_text())
    return {"wall": elapsed, "loop": t["loop"], "cpu": t["cpu"] + proxy_cpu,
            "start": t["start"]}


def startup(suite: Path, confdir: Path, rounds: int) -> dict[str, float]:
    """Medians of the embedded proxy's import, start() and stop(), each in a new process."""
    runs = []
    for i in range(rounds):
        r = subprocess.run([sys.executable, "-c", STARTUP, str(suite / f"s{i}.tap"),
                            str(confdir)], capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def until_listening(argv: list, port: int) -> float:
    """Seconds from starting `argv` until its port `port` accepts a connection."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return time.perf_counter() - t0
            if proc.poll() is not None:
                sys.exit(f"{argv[0]} exited: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def listening(suite: Path, confdir: Path, rounds: int) -> dict[str, float]:
    """Medians, interleaved: `tapproxy record` and bare `mitmdump` until listening."""
    bindir = Path(sys.executable).parent
    times: dict[str, list[float]] = {"tapproxy record": [], "mitmdump": []}
    for _ in range(rounds):
        port = _free_port()
        times["tapproxy record"].append(until_listening(
            [bindir / "tapproxy", "record", "-o", str(suite / "listen.tap"), "--listen",
             f"127.0.0.1:{port}", "--confdir", str(confdir)], port))
        port = _free_port()
        times["mitmdump"].append(until_listening(
            [bindir / "mitmdump", "-q", "--listen-host", "127.0.0.1", "--listen-port",
             str(port), "--set", f"confdir={confdir}"], port))
    return {k: statistics.median(v) for k, v in times.items()}


def profile(suite: Path, plugin: list[str], out: Path, package: Path | None) -> None:
    """The --tapproxy run under cProfile: the plugin's top 10 by cumulative time (and
    the same with the baseline's package)."""
    for label, path, pkg in [("this tapproxy", out, None)] + (
            [("baseline", out.with_suffix(".baseline"), package)] if package else []):
        run(suite, plugin, package=pkg, prefix=["-m", "cProfile", "-o", str(path)])
        print(f"cProfile of --tapproxy, {label}:")
        stats = pstats.Stats(str(path))
        stats.sort_stats("cumulative").print_stats(r"tapproxy/(pytest_|proxy/embedded)", 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="a directory holding the tapproxy package to compare against")
    ap.add_argument("--profile", type=Path, metavar="OUT",
                    help="also profile one --tapproxy run into OUT (cProfile)")
    a = ap.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(CONFTEST)
        (suite / "test_items.py").write_text(TEST.format(n=a.tests))
        confdir = suite / "mitmconf"
        plugin = ["--tapproxy", f"--tapproxy-confdir={confdir}",
                  f"--tapproxy-capture={suite / 'run.tap'}"]
        run(suite, plugin)  # creates the CA once, outside the measurement
        mport, lport, cport = _free_port(), _free_port(), _free_port()
        mitm = subprocess.Popen([bindir / "mitmdump", "-q", "--listen-host", "127.0.0.1",
                                 "--listen-port", str(mport), "--set",
                                 f"confdir={confdir}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        record = subprocess.Popen([bindir / "tapproxy", "record", "-o",
                                   str(suite / "record.tap"), "--listen", f"127.0.0.1:{lport}",
                                   "--control", f"127.0.0.1:{cport}", "--confdir",
                                   str(confdir)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        try:
            _wait_listening(mport, mitm, "mitmdump")
            _wait_listening(cport, record, "tapproxy record")
            order = [("direct", [], {}, None, None),
                     ("mitmdump", [], {"BENCH_PROXY": f"http://127.0.0.1:{mport}"}, None,
                      mitm.pid),
                     ("--tapproxy", plugin, {}, None, None),
                     ("--tapproxy-url", [f"--tapproxy-url=http://127.0.0.1:{cport}",
                                         f"--tapproxy-capture={suite / 'url.tap'}"], {},
                      None, record.pid)]
            if a.baseline:
                order.append(("baseline", plugin, {}, a.baseline.resolve(), None))
            runs: dict[str, list[dict[str, float]]] = {o[0]: [] for o in order}
            for i in range(a.rounds):
                for name, args, env, package, pid in order if i % 2 == 0 else order[::-1]:
                    runs[name].append(run(suite, args, env, package, proxy_pid=pid))
        finally:
            for p in (mitm, record):
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        print(f"{a.tests} tests, {a.rounds} rounds: medians, and (each round) wall/loop")
        print(f"{'':15} {'wall s':>7} {'loop s':>7} {'ms/test':>8} {'paired':>7} "
              f"{'cpu ms/test':>11} {'start s':>7}")

        def med(name: str, key: str) -> float:
            return statistics.median(r[key] for r in runs[name])

        ref, ref_cpu = med("mitmdump", "loop"), med("mitmdump", "cpu")
        for name, rs in runs.items():
            # Paired by round: the two runs of a round saw the same load on the machine.
            paired = statistics.median(r["loop"] - m["loop"]
                                       for r, m in zip(rs, runs["mitmdump"], strict=True))
            print(f"{name:15} {med(name, 'wall'):7.2f} {med(name, 'loop'):7.2f} "
                  f"{(med(name, 'loop') - ref) / a.tests * 1000:8.2f} "
                  f"{paired / a.tests * 1000:7.2f} "
                  f"{(med(name, 'cpu') - ref_cpu) / a.tests * 1000:11.2f} "
                  f"{med(name, 'start'):7.2f}  "
                  f"({', '.join(f'{r['wall']:.2f}/{r['loop']:.2f}' for r in rs)})")
        print("ms/test: (loop - mitmdump's loop) / tests, of the medians;\n"
              "paired: the median of the rounds' differences;\n"
              "cpu ms/test: the same for the loop's CPU time (the pytest process's, and\n"
              "  the proxy's when apart; not the process-lookup helper's);\n"
              "start s: pytest's session start to the first test (the proxy's start-up)")
        s = startup(suite, confdir, a.rounds)
        print(f"embedded proxy: import {s['import']:.2f} s, start() {s['start']:.2f} s, "
              f"stop() {s['stop']:.2f} s (medians of {a.rounds})")
        up = listening(suite, confdir, a.rounds)
        print(f"until listening: tapproxy record {up['tapproxy record']:.2f} s, bare mitmdump "
              f"{up['mitmdump']:.2f} s (medians of {a.rounds}, interleaved)")
        if a.profile:
            profile(suite, plugin, a.profile, a.baseline and a.baseline.resolve())


if __name__ == "__main__":
    main()
