"""How long the `tapproxy` command takes before it does any work: wall time of short
commands, each in a fresh process, and of `record` until it says it is listening.

    .venv/bin/python benchmarks/cli_startup.py [--rounds 10] [--baseline DIR]
        [--tests 20000] [--commands help why stats why-test record ...]

Commands measured (all as `python -m tapproxy.cli`, run from / so that no tapproxy/ in
the current directory is imported instead):

- `help`: `--help`;
- `why`, `stats`: on a small capture (20 tests of 5 calls, every 10th failing);
- `why-test`: `why --test T` for one failing test of a capture of `--tests` tests
  (5 calls each: 100,000 exchanges, 66 MB, for 20,000): the capture's index gives the
  test's records without reading the rest, so the work is small and the rest start-up;
- `record`: `record` on a free port with its control API on another (as by default),
  from exec until stdout says `# forward proxy at`; then SIGINT (the shutdown is not
  timed); `record-nocontrol` the same with `--control off`;
- `mitmdump`: a bare `mitmdump` until it logs that it listens: the floor for `record`
  (mitmproxy's own imports), measured once per round, not per variant.

`--baseline DIR` also measures the tapproxy package in DIR (e.g. `git archive main
tapproxy | tar -x -C DIR`), interleaved with this tree round by round in a rotated
order, so that a slow spell of the shared machine hurts both alike. Printed: the median
and min-max of wall seconds over rounds per command, the median CPU seconds (user +
system: steadier than wall time on a loaded machine), the ratios of the medians, and
for each command the heavy packages its process imported (from `-X importtime`, one
extra run each).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

HEAVY = ("mitmproxy", "opentelemetry", "jinja2", "openapi_core", "jsonschema", "grpc",
         "aiohttp", "yaml", "rich", "msgpack", "pydantic", "asyncio")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(package: Path) -> dict[str, str]:
    # PYTHONPATH comes before the editable install's finder on sys.meta_path.
    return {**os.environ, "PYTHONPATH": str(package), "COLUMNS": "80"}


def _short(argv: list[str], package: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `tapproxy ARGV`."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tapproxy.cli", *argv], cwd="/",
                            env=_env(package), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # `why` exits 1 when it found a failure
        sys.exit(f"{argv} with {package} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _until(argv: list[str], package: Path, ready: str) -> tuple[float, float]:
    """(wall, CPU seconds) from exec until a line of stdout contains `ready`; then SIGINT."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd="/", env=_env(package), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ready in line:
            break
    else:
        sys.exit(f"{argv[:4]} with {package} ended without listening (exit {proc.wait()})")
    elapsed, cpu = time.perf_counter() - t, _cpu(proc.pid)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    return elapsed, cpu


def _record(work: Path, confdir: Path, package: Path,
            control: bool = True) -> tuple[float, float]:
    argv = [sys.executable, "-m", "tapproxy.cli", "record", "-o", str(work / "rec.tap"),
            "--listen", f"127.0.0.1:{_free_port()}", "--confdir", str(confdir),
            "--control", f"127.0.0.1:{_free_port()}" if control else "off"]
    return _until(argv, package, "# forward proxy at")


def _mitmdump(confdir: Path) -> tuple[float, float]:
    argv = [str(Path(sys.executable).with_name("mitmdump")), "--listen-host", "127.0.0.1",
            "-p", str(_free_port()), "--set", f"confdir={confdir}"]
    return _until(argv, ROOT, "proxy listening at")


def _imported(argv: list[str], package: Path) -> tuple[list[str], int]:
    """The heavy packages one run imports, and how many modules it imports in all."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "tapproxy.cli", *argv],
                       cwd="/", env=_env(package), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", r.stderr, re.M)
    tops = {n.split(".")[0] for n in names}
    return [h for h in HEAVY if h in tops], len(names)


def _table(commands: list[str], names: list[str],
           times: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    """Per command and variant: median wall seconds (min-max) and median CPU seconds;
    with a baseline, the ratios of the medians."""
    head = " | ".join(f"{v} wall s (min-max) | {v} CPU s" for v in names)
    ratios = " | this/baseline wall | CPU" if len(names) > 1 else ""
    print(f"| command | {head}{ratios} |")
    print("|---|" + "--:|" * (2 * len(names) + 2 * (len(names) > 1)))
    for cmd in commands:
        cells, wall, cpu = [], {}, {}
        for v in names:
            runs = times.get((cmd, v)) or times[cmd, "this"]  # mitmdump: one figure
            walls = [w for w, _ in runs]
            wall[v], cpu[v] = statistics.median(walls), statistics.median(c for _, c in runs)
            cells += [f"{wall[v]:.2f} ({min(walls):.2f}-{max(walls):.2f})", f"{cpu[v]:.2f}"]
        if len(names) > 1:
            cells += ([f"{wall['this'] / wall['baseline']:.2f}",
                       f"{cpu['this'] / cpu['baseline']:.2f}"] if cmd != "mitmdump"
                      else ["-", "-"])
        print(f"| {cmd} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--baseline", type=Path, help="another tapproxy package tree to compare")
    ap.add_argument("--tests", type=int, default=20_000)
    ap.add_argument("--commands", nargs="*",
                    default=["help", "why", "stats", "why-test", "record", "record-nocontrol",
                             "mitmdump"])
    args = ap.parse_args()
    if args.tests < 10:
        ap.error("--tests: at least 10 (every 10th test fails)")
    import why_scale

    variants = {"this": ROOT}
    if args.baseline:
        variants["baseline"] = args.baseline.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small, big, confdir = work / "small.tap", work / "big.tap", work / "confdir"
        why_scale.make_many_tests(small, 20, baseline=False)
        if "why-test" in args.commands:
            why_scale.make_many_tests(big, args.tests, baseline=False)
        # The last failing test (every 10th fails): its records are near the file's end.
        failing = f"tests/test_many.py::test_{args.tests - 1 - (args.tests - 10) % 10:06d}"
        argvs = {"help": ["--help"], "why": ["why", str(small)],
                 "stats": ["stats", str(small)],
                 "why-test": ["why", str(big), "--test", failing],
                 # importtime only: the proxy is not run
                 "record": ["record", "--help"], "record-nocontrol": ["record", "--help"]}
        _record(work, confdir, ROOT)  # the CA is made once, outside the timing
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        names = list(variants)
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for cmd in args.commands:
                for v in ["this"] if cmd == "mitmdump" else order:
                    if cmd == "mitmdump":
                        t = _mitmdump(confdir)
                    elif cmd.startswith("record"):
                        t = _record(work, confdir, variants[v], control=cmd == "record")
                    else:
                        t = _short(argvs[cmd], variants[v])
                    times.setdefault((cmd, v), []).append(t)
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        print(f"rounds: {args.rounds}; load average now: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
        _table(args.commands, names, times)
        print("\nheavy packages imported (record: `record --help`, its command module):")
        for cmd in args.commands:
            for v in names if cmd in argvs else ():
                heavy, count = _imported(argvs[cmd], variants[v])
                print(f"- {cmd}, {v}: {count} modules; {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
