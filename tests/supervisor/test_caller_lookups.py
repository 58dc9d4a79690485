"""The event loop's side of process lookups: the helper process, its pipe, its failures.

Real parts: the proxy, its real helper process (frozen with SIGSTOP, killed with
SIGKILL), curl as the client; and the helper's loop itself fed real connections.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tapproxy.supervisor.options import Address, ProcessRule, ReverseSpec
from tapproxy.supervisor.processes import SUPPORTED, serve
from tests.conftest import free_port, wait_for
from tests.supervisor.test_processes import NO_PROXY_ENV, callers, curl

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="process lookup needs Linux /proc")

PYTHON = os.path.basename(os.path.realpath(sys.executable))


def test_the_helper_answers_each_lookup_in_turn_and_reports_a_failed_one():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            conn, peer = srv.accept()
            with conn:
                here = conn.getsockname()
                requests = io.BytesIO(b"".join(json.dumps(m).encode() + b"\n" for m in [
                    ["lookup", 1, *peer, *here],
                    ["service", os.getpid(), "this-test"],  # names this process from now on
                    ["lookup", 2, *peer, *here],
                    ["lookup", 3, peer[0], "not a port", *here],
                    ["lookup", 4, "127.0.0.1", 9, *here],  # no such connection
                ]))
                answers = io.BytesIO()
                serve((ProcessRule("nothing-matches", "x"),), requests, answers)
    lines = [json.loads(line) for line in answers.getvalue().splitlines()]
    assert [line[0] for line in lines[:2]] == [1, 2]
    me = (os.getpid(), PYTHON, None)
    assert [(f["pid"], f["exe"], f["service"]) for _, f in lines[:1]] == [me]
    assert (lines[1][1]["pid"], lines[1][1]["service"]) == (os.getpid(), "this-test")
    with open("/proc/self/cmdline", "rb") as f:  # this very process's command line
        me_cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    assert lines[1][1]["command"] == me_cmd[:200]
    assert lines[2][:2] == [3, None] and "error" in lines[2][2]
    assert lines[3] == [4, None]


def stopped_helper(proxy):
    """Freeze the lookup helper (SIGSTOP) once the proxy is up; thaw it with SIGCONT."""
    lookups = proxy.handle.recorder.processes
    wait_for(lambda: lookups.helper_pid, timeout=10, what="the lookup helper to start")
    os.kill(lookups.helper_pid, signal.SIGSTOP)
    return lookups


@pytest.mark.parametrize("live", [False, True], ids=["recording", "live-spans"])
def test_a_lookup_still_running_at_the_first_request_is_waited_for(fronted, live):
    proxy, url = fronted(inject_traceparent=live)
    lookups = stopped_helper(proxy)
    client = subprocess.Popen(["curl", "-q", "-sS", "--fail", "-o", "/dev/null",
                               f"{url}/slow-lookup"], env=NO_PROXY_ENV)
    try:
        # The connection is open and its lookup sent; let its request arrive and wait.
        wait_for(lambda: lookups.lookups == 1, timeout=10, what="the connection's lookup")
        time.sleep(0.3)
        assert not proxy.exchanges()
    finally:
        os.kill(lookups.helper_pid, signal.SIGCONT)
    assert client.wait(timeout=30) == 0
    assert callers(proxy) == {"/slow-lookup": ("curl", "process")}


def test_a_lookup_that_never_answers_holds_the_request_only_briefly(fronted):
    proxy, url = fronted()
    lookups = stopped_helper(proxy)
    try:
        curl(f"{url}/frozen")  # answered once the wait gives up, the caller unnamed
    finally:
        os.kill(lookups.helper_pid, signal.SIGCONT)
    assert callers(proxy) == {"/frozen": ("127.0.0.1", "peer")}
    curl(f"{url}/thawed")  # a new connection: the helper answers again
    assert callers(proxy)["/thawed"] == ("curl", "process")


def test_a_helper_that_dies_is_reported_and_recording_goes_on(fronted, caplog):
    proxy, url = fronted()
    lookups = proxy.handle.recorder.processes
    wait_for(lambda: lookups.helper_pid, timeout=10, what="the lookup helper to start")
    os.kill(lookups.helper_pid, signal.SIGKILL)
    wait_for(lambda: lookups.helper_pid is None, timeout=10, what="the helper's loss noticed")
    assert "caller lookup helper exited (exit code -9)" in caplog.text
    curl(f"{url}/after")
    assert callers(proxy) == {"/after": ("127.0.0.1", "peer")}


def test_the_helper_ends_with_the_proxy(start_proxy):
    proxy = start_proxy(reverse=(ReverseSpec("x", "http://127.0.0.1:9",
                                             Address("127.0.0.1", free_port())),))
    lookups = proxy.handle.recorder.processes
    wait_for(lambda: lookups.helper_pid, timeout=10, what="the lookup helper to start")
    pid = lookups.helper_pid
    proxy.stop()
    assert lookups.helper_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


def test_lookups_queued_behind_a_full_pipe_are_all_answered():
    # More lookups than the pipe holds (64 KiB) while the helper is frozen: the rest waits
    # in our buffer, and every one is answered once it runs again.
    from tapproxy.supervisor.caller_lookups import CallerLookups

    class Client:  # what CallerLookups reads of a mitmproxy client connection
        def __init__(self, port: int) -> None:
            self.peername, self.sockname = ("127.0.0.1", port), ("127.0.0.1", 9)

    async def run() -> list:
        lookups = CallerLookups()
        lookups.open()
        os.kill(lookups.helper_pid, signal.SIGSTOP)
        try:
            clients = [Client(1024 + i) for i in range(3000)]  # ~200 KiB of requests
            for c in clients:
                lookups.start(c)
            assert lookups._unsent, "the pipe took everything: the test proves nothing"
        finally:
            os.kill(lookups.helper_pid, signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(*(lookups.pending(c) for c in clients
                                                if lookups.pending(c))), timeout=60)
        answers = [lookups.get(c) for c in clients]
        lookups.close()
        return answers

    assert asyncio.run(run()) == [None] * 3000  # no process holds those made-up sockets
