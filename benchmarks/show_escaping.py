"""What escaping recorded control characters costs `tapproxy show`, per table row.

Renders the same exchanges with `print_table` three ways, CPU time only (process_time,
so other load on the machine counts less), median of --rounds:
- plain: rich's Console, recorded text as it is (what `show` did before escaping);
- printable: plain Console, every recorded cell through `printable()`;
- terminal: `printable()` and the escaping console `show` uses now.

    .venv/bin/python benchmarks/show_escaping.py [--rows 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from rich.console import Console

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.report import text
from tapproxy.report.printable import terminal


def _rows(n: int) -> list[tuple[int, Exchange]]:
    t0 = 1_700_000_000_000_000_000
    json_type = Headers((("content-type", "application/json"),))
    return [(i + 1, Exchange(
        id=f"id{i:08d}", caller=Party("shop", "proxy-auth"),
        callee=Party("payments", "service-map"),
        request=Request("POST", "http", "127.0.0.1", 80, f"/charges/{i}?x=1", "HTTP/1.1",
                        json_type, b'{"a": 1}'),
        response=Response(201, "Created", "HTTP/1.1", json_type, b'{"ok": true}'),
        timing=Timing(request_start=t0 + i, request_end=t0 + i + 10),
        test=f"test_{i // 100}", test_source="control")) for i in range(n)]


def _time(rows, console: Console, escape: bool) -> float:
    original = text.printable
    if not escape:
        text.printable = lambda s, lines=False: s
    try:
        start = time.process_time()
        text.print_table(rows, console)
        return time.process_time() - start
    finally:
        text.printable = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = _rows(args.rows)

    def plain() -> Console:
        return Console(file=io.StringIO(), highlight=False, soft_wrap=True)

    def escaping() -> Console:
        console = terminal()
        console.file = io.StringIO()
        return console

    for name, make, escape in [("plain", plain, False), ("printable", plain, True),
                               ("terminal", escaping, True)]:
        median = statistics.median(_time(rows, make(), escape) for _ in range(args.rounds))
        print(f"{name:<10} {median / args.rows * 1e6:6.1f} µs per row")


if __name__ == "__main__":
    main()
