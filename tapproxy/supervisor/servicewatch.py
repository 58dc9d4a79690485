"""What a started service says and uses: its output lines and its process tree's
resources, as capture records (written, and the latest kept for failure reports).

`LogSink` is a text sink for a service's stdout or stderr (fronting's ServiceProcess
writes each line to it, prefixed `[name] `); `ResourceSampler` samples the process tree
with psutil in a thread. Both hand records to a `ServiceJournal`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from tapproxy.capture.model import ResourceSample, ServiceLog

__all__ = ["LogSink", "ResourceSampler", "ServiceJournal"]


class ServiceJournal:
    """Thread-safe: every record goes to `write` (a capture writer's), and the last `keep`
    of each kind stay in memory for the failure report of the test that is running."""

    def __init__(self, write: Callable[[ServiceLog | ResourceSample], None] | None = None,
                 keep: int = 5000) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._logs: deque[ServiceLog] = deque(maxlen=keep)
        self._samples: deque[ResourceSample] = deque(maxlen=keep)

    def add(self, record: ServiceLog | ResourceSample) -> None:
        with self._lock:
            (self._logs if isinstance(record, ServiceLog) else self._samples).append(record)
            if self._write is not None:
                self._write(record)

    def logs(self, service: str, start: int, end: int) -> list[ServiceLog]:
        """`service`'s lines read from `start` to `end` (ns since epoch), in order."""
        with self._lock:
            return [r for r in self._logs if r.service == service and start <= r.timestamp <= end]

    def samples(self, service: str, start: int, end: int) -> list[ResourceSample]:
        """`service`'s samples from `start` to `end`; if none, the last one before."""
        with self._lock:
            mine = [r for r in self._samples if r.service == service and r.timestamp <= end]
        inside = [r for r in mine if r.timestamp >= start]
        return inside or mine[-1:]

    def close(self) -> None:
        """Stop writing: a sampler or a service's output that outlives the capture is
        only kept in memory."""
        with self._lock:
            self._write = None

    def services(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(r.service for r in (*self._logs, *self._samples)))


class LogSink:
    """A writable text stream turning each line into a ServiceLog record."""

    def __init__(self, journal: ServiceJournal, service: str, stream: str) -> None:
        self._journal, self.service, self.stream = journal, service, stream
        self._prefix = f"[{service}] "
        self._partial = ""

    def write(self, text: str) -> int:
        stamp = time.time_ns()
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            line = line.removesuffix("\r")
            # ServiceProcess marks each line with the service's name: the record has a field.
            line = line.removeprefix(self._prefix)
            self._journal.add(ServiceLog(self.service, self.stream, line, stamp))
        return len(text)

    def flush(self) -> None:
        pass


class ResourceSampler:
    """Samples a process and its children every `interval` seconds until stopped."""

    def __init__(self, journal: ServiceJournal, service: str, interval: float = 0.2) -> None:
        self._journal, self.service, self.interval = journal, service, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, object] = {}  # psutil.Process by pid: cpu_percent needs the last

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True,
                                        name=f"tapproxy-{self.service}-resources")
        self._thread.start()

    def stop(self) -> None:
        """Stop after one last sample (call it before the service is stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, pid: int) -> None:
        import psutil

        try:
            main = psutil.Process(pid)
            self._procs = {pid: main}
            main.cpu_percent(None)  # the first call only starts the measurement
        except psutil.Error:
            return
        last = False
        while True:
            sample = self._sample(main, psutil)
            if sample is None:
                return  # the service is gone
            self._journal.add(sample)
            if last:
                return
            last = self._stop.wait(self.interval)  # one last sample once stop() is asked

    def _sample(self, main, psutil) -> ResourceSample | None:
        try:
            tree = [main, *main.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = 0.0
        rss = threads = fds = 0
        has_fds = hasattr(main, "num_fds")
        alive = {}
        for p in tree:
            known = self._procs.get(p.pid, p)
            try:
                with known.oneshot():
                    cpu += known.cpu_percent(None)  # 0.0 on a process's first sample
                    rss += known.memory_info().rss
                    threads += known.num_threads()
                    if has_fds:
                        fds += known.num_fds()
            except psutil.Error:
                continue  # a child that just ended
            alive[p.pid] = known
        self._procs = alive
        if main.pid not in alive:
            return None
        return ResourceSample(self.service, time.time_ns(), main.pid, round(cpu, 1), rss,
                              threads, fds if has_fds else None)
