"""A started service's output lines and resources become records (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tapproxy.capture import ResourceSample, ServiceLog
from tapproxy.supervisor.servicewatch import LogSink, ResourceSampler, ServiceJournal
from tests.conftest import wait_for


def test_each_line_is_a_record_without_the_name_prefix_partial_lines_joined():
    written = []
    journal = ServiceJournal(written.append)
    sink = LogSink(journal, "payments", "stderr")
    sink.write("[payments] starting\n[payments] card ")
    sink.write("declined\r\n")
    assert [(r.service, r.stream, r.line) for r in written] == [
        ("payments", "stderr", "starting"), ("payments", "stderr", "card declined")]
    t0, t1 = written[0].timestamp, written[1].timestamp
    assert journal.logs("payments", t0, t1) == written
    assert journal.logs("payments", t1 + 1, t1 + 2) == []
    assert journal.logs("web", t0, t1) == []


def test_the_journal_keeps_only_the_latest_records_in_memory():
    written = []
    journal = ServiceJournal(written.append, keep=3)
    for i in range(5):
        journal.add(ServiceLog("web", "stdout", str(i), i))
    assert [r.line for r in journal.logs("web", 0, 10)] == ["2", "3", "4"]
    assert len(written) == 5  # the capture gets every one


def test_a_process_tree_is_sampled_until_stopped_with_a_last_sample():
    # A parent holding 20 MB with a child: both count.
    code = ("import subprocess, sys, time; x = bytearray(20_000_000); "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('up', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == b"up\n"
        journal = ServiceJournal()
        sampler = ResourceSampler(journal, "worker", interval=0.05)
        sampler.start(proc.pid)
        wait_for(lambda: len(journal.samples("worker", 0, time.time_ns())) >= 2,
                 what="two samples")
        sampler.stop()
        samples = journal.samples("worker", 0, time.time_ns())
        assert all(isinstance(s, ResourceSample) and s.pid == proc.pid for s in samples)
        last = samples[-1]
        assert last.rss > 20_000_000
        assert last.threads >= 2  # one per process at least
        assert last.fds is not None and last.fds >= 3
        assert len(journal.samples("worker", 0, time.time_ns())) == len(samples)  # stopped
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_closed_journal_keeps_records_in_memory_only():
    written = []
    journal = ServiceJournal(written.append)
    journal.close()
    journal.add(ServiceLog("web", "stdout", "late", 5))
    assert written == []
    assert [r.line for r in journal.logs("web", 0, 10)] == ["late"]
