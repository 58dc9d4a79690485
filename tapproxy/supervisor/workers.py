"""`record --workers N`: N recording mitmproxy processes behind the same listeners
(SO_REUSEPORT), each writing a capture part, merged into the one capture at stop.

The supervisor reserves every listening port first (a port 0 becomes one port for all),
starts the workers (tapproxy.proxy.worker), serves the one control API in front of
theirs (supervisor.fanout), reports a worker that dies while the others keep serving,
and merges the parts in the order their records were complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from tapproxy.errors import ProxyError
from tapproxy.supervisor.options import Address, RecordOptions

__all__ = ["WorkerGroup", "part_paths", "resolve_workers"]

_START_TIMEOUT = 60.0


def resolve_workers(value: str | int, what: str = "--workers") -> int:
    """`auto` (one per core) or a positive number (UsageError naming `what` if not)."""
    from tapproxy.errors import UsageError

    text = str(value).strip().lower()
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise UsageError(f"bad {what} {value!r}: expected 'auto' or a number from 1 to 64")
    return int(text)


def part_paths(output: Path, count: int) -> list[Path]:
    """Where each worker writes: run.tap → run.worker1.tap, run.worker2.tap, …"""
    return [output.with_name(f"{output.stem}.worker{i}{output.suffix}")
            for i in range(1, count + 1)]


class _Worker:
    def __init__(self, index: int, part: Path, process, conn) -> None:
        self.index = index
        self.part = part
        self.process = process
        self.conn = conn
        self.control: Address | None = None
        self.reported = False  # its death was told on stderr

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def describe_exit(self) -> str:
        # Its end can be seen (its pipe closed) before the process is reaped: wait for
        # the status a moment, or it would read "exited with status None".
        self.process.join(timeout=2)
        code = self.process.exitcode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class WorkerGroup:
    """N worker processes recording `opts` (whose `workers` says how many)."""

    def __init__(self, opts: RecordOptions, verbose: bool = False) -> None:
        self.options = opts
        self._verbose = verbose
        self._reserved: list[socket.socket] = []
        self.workers: list[_Worker] = []
        self._watch: threading.Thread | None = None
        self._stopping = threading.Event()
        self.lost: list[str] = []  # one line per worker that died while running
        self._commands = threading.Lock()  # one command and its answers at a time

    # -- start ---------------------------------------------------------------------------

    def start(self) -> RecordOptions:
        """Start every worker (ProxyError naming what failed, and none left running);
        the options as the workers run them, every port 0 replaced by the one taken."""
        from tapproxy.proxy.worker import run_worker

        try:
            opts = self._reserve_ports(self.options)
            self.options = opts
            ctx = multiprocessing.get_context("spawn")
            for index, part in enumerate(part_paths(opts.output, opts.workers), 1):
                mine = dataclasses.replace(
                    opts, output=part,
                    # Each worker's own API, reached by the supervisor's only.
                    control=Address("127.0.0.1", 0),
                    # One OTLP receiver is enough: the first worker's.
                    otlp_receive=opts.otlp_receive if index == 1 else None)
                ours, theirs = ctx.Pipe()  # duplex: each end sees the other go
                process = ctx.Process(target=run_worker, args=(mine, theirs, self._verbose,
                                                                 index == 1),
                                      name=f"tapproxy-worker{index}", daemon=True)
                process.start()
                theirs.close()
                self.workers.append(_Worker(index, part, process, ours))
            for w in self.workers:
                self._await_ready(w)
        except BaseException:
            self.stop(merge=False)
            raise
        finally:
            for s in self._reserved:  # every worker listens now: the ports are theirs
                s.close()
            self._reserved.clear()
        self._watch = threading.Thread(target=self._watch_workers, daemon=True,
                                       name="tapproxy-workers-watch")
        self._watch.start()
        return self.options

    def _reserve_ports(self, opts: RecordOptions) -> RecordOptions:
        """A socket bound with SO_REUSEPORT on each listener's address, kept (never
        listening, so it takes no connection) until every worker bound the same port."""

        def take(address: Address) -> Address:
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind((address.host, address.port))
            except OSError as e:
                s.close()
                reason = "address already in use" if e.errno == 98 else e.strerror or str(e)
                raise ProxyError(f"cannot listen on {address}: {reason}") from None
            self._reserved.append(s)
            return Address(address.host, s.getsockname()[1])

        return dataclasses.replace(
            opts, listen=take(opts.listen),
            listeners=tuple(dataclasses.replace(n, listen=take(n.listen))
                            for n in opts.listeners),
            reverse=tuple(dataclasses.replace(r, listen=take(r.listen))
                          for r in opts.reverse))

    def _await_ready(self, w: _Worker) -> None:
        if not w.conn.poll(_START_TIMEOUT):
            raise ProxyError(f"worker {w.index} did not start within {_START_TIMEOUT:.0f} s")
        try:
            status, value = w.conn.recv()
        except EOFError:
            raise ProxyError(f"worker {w.index} stopped during start-up "
                             f"({w.describe_exit()})") from None
        if status != "ready":
            raise ProxyError(str(value))
        w.control = Address("127.0.0.1", int(value))

    # -- running -------------------------------------------------------------------------

    def _watch_workers(self) -> None:
        """Tell on stderr, once, each worker that dies before the group stops."""
        from multiprocessing.connection import wait

        pending = {w.process.sentinel: w for w in self.workers}
        while pending and not self._stopping.is_set():
            for sentinel in wait(list(pending), timeout=0.5):
                w = pending.pop(sentinel)  # type: ignore[call-overload]
                if self._stopping.is_set():
                    return
                self._report_lost(w)

    def _report_lost(self, w: _Worker) -> None:
        if w.reported:
            return
        w.reported = True
        line = (f"worker {w.index} (pid {w.process.pid}) {w.describe_exit()}; its "
                f"in-flight exchanges are lost, the others keep serving")
        self.lost.append(line)
        with contextlib.suppress(OSError):
            print(f"tapproxy: warning: {line}", file=sys.stderr, flush=True)

    def command(self, *message) -> None:
        """Have every live worker run `message` (add_reverse SPEC, add_service PID NAME
        DESCENDANTS); ProxyError with the first worker's complaint."""
        with self._commands:
            errors = []
            for w in self.workers:
                if not w.alive:
                    continue
                try:
                    w.conn.send(message)
                    status, value = w.conn.recv()
                except (EOFError, OSError):
                    continue  # it died meanwhile: reported by the watch
                if status != "ok":
                    errors.append(str(value))
            if errors:
                raise ProxyError(errors[0])

    def live_controls(self) -> list[Address]:
        return [w.control for w in self.workers if w.alive and w.control is not None]

    # -- stop ----------------------------------------------------------------------------

    def stop(self, merge: bool = True) -> int | None:
        """Stop every worker and merge the parts into the capture; how many records
        (None with `merge=False`: the parts are removed, nothing is published; None
        again after the first stop)."""
        if self._stopping.is_set():
            return None
        self._stopping.set()
        for w in self.workers:
            if w.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.process.pid, signal.SIGTERM)
        for w in self.workers:
            w.process.join(_START_TIMEOUT)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            elif w.process.exitcode not in (0, None) and merge:
                self._report_lost(w)
        if self._watch is not None:
            self._watch.join(2)
        parts = [w.part for w in self.workers if w.part.exists()]
        if not merge:
            for p in parts:
                p.unlink(missing_ok=True)
            return None
        return self.merge(parts)

    def merge(self, parts: list[Path]) -> int:
        from tapproxy.capture.merge import merge_interleaved

        count = merge_interleaved(parts, self.options.output,
                                  {"workers": len(self.workers)})
        for p in parts:
            p.unlink(missing_ok=True)
        return count

    def processes(self) -> list[dict]:
        return [{"worker": w.index, "pid": w.process.pid, "alive": w.alive,
                 "part": str(w.part)} for w in self.workers]
