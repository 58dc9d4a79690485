"""What `pytest --tapproxy` adds to a test run's wall time (run by hand).

Generates a suite of N tests (default 200) that each send one request to a small
aiohttp service the suite starts in a thread, then runs it with and without
`--tapproxy`, interleaved round by round (the machine is shared and noisy), and prints
the median wall time of each and the difference per test. Without the plugin the
requests go straight to the service; with it they go through the embedded proxy, so
the figure includes proxying as well as opening and closing a test case per test, and
each test reads `tapproxy.env` (the proxy environment) as a suite's tests do.

    .venv/bin/python benchmarks/pytest_plugin_overhead.py [--tests 200] [--rounds 5]
        [--baseline DIR]

`--baseline DIR` adds a third run to each round: `--tapproxy` with the tapproxy package
found in DIR (e.g. `git archive main tapproxy | tar -x -C DIR`), to compare a change
against the code before it on the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFTEST = '''
import threading, asyncio
import pytest
from aiohttp import web

@pytest.fixture(scope="session")
def service():
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    async def start():
        app = web.Application()
        app.router.add_get("/item/{n}", lambda r: web.json_response({"n": r.match_info["n"]}))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]
    port = asyncio.run_coroutine_threadsafe(start(), loop).result()
    return f"http://127.0.0.1:{port}"

@pytest.fixture  # per test, as a suite reads tapproxy.env in each test
def proxies(request):
    if request.config.getoption("tapproxy"):
        return {"http": request.getfixturevalue("tapproxy").env["HTTP_PROXY"]}
    return {}
'''

TEST = '''
import pytest, requests

@pytest.mark.parametrize("n", range({n}))
def test_item(service, proxies, n):
    r = requests.get(f"{{service}}/item/{{n}}", proxies=proxies, timeout=10)
    assert r.json() == {{"n": str(n)}}
'''


def run(suite: Path, args: list[str], package: Path | None = None) -> float:
    # The suite's directory is the working directory, so PYTHONPATH decides which
    # tapproxy package is imported (it comes before the editable install's finder).
    env = {**os.environ, "PYTHONPATH": str(package)} if package else None
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:randomly", *args], cwd=suite, capture_output=True, text=True,
                       env=env)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"the suite failed ({' '.join(args) or 'plain'}):\n{r.stdout}\n{r.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="a directory holding the tapproxy package to compare against")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(CONFTEST)
        (suite / "test_items.py").write_text(TEST.format(n=a.tests))
        confdir = suite / "mitmconf"
        plugin = ["--tapproxy", f"--tapproxy-confdir={confdir}",
                  f"--tapproxy-capture={suite / 'run.tap'}"]
        run(suite, plugin)  # creates the CA once, outside the measurement
        order = [("without", [], None), ("with --tapproxy", plugin, None)]
        if a.baseline:
            order.append(("baseline", plugin, a.baseline.resolve()))
        times: dict[str, list[float]] = {name: [] for name, _, _ in order}
        for i in range(a.rounds):
            for name, args, package in order if i % 2 == 0 else order[::-1]:
                times[name].append(run(suite, args, package))
        base = statistics.median(times["without"])
        tapped = statistics.median(times["with --tapproxy"])
        for name, ts in times.items():
            print(f"{name:16} median {statistics.median(ts):6.2f} s   "
                  f"({', '.join(f'{t:.2f}' for t in ts)})")
        # Paired by round: the two runs of a round saw the same load on the machine.
        added = statistics.median(t - b for t, b in zip(times["with --tapproxy"],
                                                        times["without"], strict=True))
        print(f"added (median of the rounds' differences): {added:.2f} s for {a.tests} "
              f"tests ({added / a.tests * 1000:.1f} ms per test); medians {tapped:.2f} s "
              f"against {base:.2f} s")
        if a.baseline:
            before = statistics.median(t - b for t, b in zip(times["baseline"],
                                                             times["without"], strict=True))
            print(f"baseline added: {before:.2f} s ({before / a.tests * 1000:.1f} ms per "
                  "test)")


if __name__ == "__main__":
    main()
