#!/usr/bin/env python3
"""mitmproxy as `tapproxy record` runs it (same addons), recording nothing.

    .venv/bin/python benchmarks/tapproxy_mitmproxy.py --listen 127.0.0.1:8080 --confdir DIR

The (d) configuration of proxy_overhead.py: with it, the table separates what tapproxy
gains by loading only the mitmproxy addons it needs from what its recording costs.
Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from mitmproxy import options
from mitmproxy.master import Master

from tapproxy.proxy.runner import mitmproxy_addons


async def main(listen: str, confdir: str) -> None:
    opts = options.Options()
    master = Master(opts, event_loop=asyncio.get_running_loop())
    master.addons.add(*mitmproxy_addons())
    opts.update(mode=[f"regular@{listen}"], confdir=confdir)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--confdir", required=True)
    args = ap.parse_args()
    asyncio.run(main(args.listen, args.confdir))
