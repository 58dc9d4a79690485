"""ServiceProcess, the part under `record --start` (and a pytest fixture to come)."""

from __future__ import annotations

import io
import signal
import socket
import sys
from pathlib import Path

import pytest

from tapproxy.errors import ProxyError, UsageError
from tapproxy.supervisor.fronting import ServiceProcess
from tapproxy.supervisor.options import Address
from tests.cli.test_fronting_cli import alive
from tests.conftest import wait_for

# Listens on argv[1], ignores SIGTERM, and starts a child that does the same (its pid
# written to argv[2]), as a stubborn service with a worker would.
STUBBORN = """
import os, signal, socket, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
open(sys.argv[2], "w").write(str(child.pid))
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("up", flush=True)
print("warning", file=sys.stderr, flush=True)
time.sleep(120)
"""


def test_a_service_that_ignores_sigterm_is_killed_with_its_children(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    out, err = io.StringIO(), io.StringIO()
    svc = ServiceProcess("stubborn", [sys.executable, "-c", STUBBORN, "{port}", str(pidfile)],
                         stop_timeout=0.5, stdout=out, stderr=err)
    svc.start()
    assert svc.reverse(Address("127.0.0.1", 5001)).upstream == f"http://127.0.0.1:{svc.private_port}"
    child = int(pidfile.read_text())
    assert alive(svc.pid) and alive(child)
    assert svc.stop() == -signal.SIGKILL
    wait_for(lambda: not alive(child), what="the child's SIGKILL")  # delivered async
    assert out.getvalue() == "[stubborn] up\n"
    assert err.getvalue() == "[stubborn] warning\n"  # no "exited" line: it was stopped


def test_the_port_placeholder_is_filled_in_arguments_and_environment():
    svc = ServiceProcess("s", ["srv", "--port={port}", "{port}"], env={"PORT": "{port}"},
                         private_port=4321)
    assert svc.argv == ["srv", "--port=4321", "4321"]
    assert svc.env == {"PORT": "4321"}


def test_a_service_that_dies_after_it_listened_says_so_on_stderr(tmp_path: Path):
    # Listens, then exits on its own while tapproxy would still be recording.
    code = ("import os, socket, sys, time; s = socket.socket(); "
            "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.05)\n"
            "sys.exit(4)")
    go = tmp_path / "go"
    err = io.StringIO()
    svc = ServiceProcess("brief", [sys.executable, "-c", code, "{port}", str(go)],
                         stderr=err, stdout=io.StringIO())
    svc.start()
    go.touch()
    assert svc.wait(30) == 4
    assert err.getvalue() == "[brief] exited with code 4\n"
    assert svc.stop() == 4


def test_an_unknown_command_is_a_proxy_error():
    with pytest.raises(ProxyError, match=r"^service x: cannot start '/no/such/cmd': "):
        ServiceProcess("x", ["/no/such/cmd", "{port}"]).start()


def test_a_command_without_the_port_placeholder_is_refused_before_it_starts(tmp_path: Path):
    # It could only be waited for until the start timeout, and then stopped.
    started = tmp_path / "started"
    argv = [sys.executable, "-c", f"open({str(started)!r}, 'w'); import time; time.sleep(60)"]
    with pytest.raises(UsageError, match=r"^service slow: say where it listens with "
                                         r"\{port\} \(in argv or env\)$"):
        ServiceProcess("slow", argv, env={"PORT": "8000"}).start()
    assert not started.exists()


# Listens on argv[1] and starts two grandchildren in sessions of their own, out of reach
# of a signal to its process group: one it stays the parent of (`setsid sleep`), one
# orphaned at once (`setsid -f`: its parent exits), as daemonizing workers are.
SESSION_LEAVER = """
import socket, subprocess, sys, time
own = subprocess.Popen(["setsid", "sh", "-c", f"echo $$ > {sys.argv[2]}; exec sleep 300"])
subprocess.run(["setsid", "-f", "sh", "-c", f"echo $$ > {sys.argv[3]}; exec sleep 300"])
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(300)
"""


def test_stop_ends_grandchildren_that_left_its_process_group(tmp_path: Path):
    kept, orphaned = tmp_path / "kept.pid", tmp_path / "orphaned.pid"
    svc = ServiceProcess("leaver", [sys.executable, "-c", SESSION_LEAVER, "{port}",
                                    str(kept), str(orphaned)],
                         stdout=io.StringIO(), stderr=io.StringIO())
    svc.start()
    pids = [int(wait_for(lambda p=p: p.exists() and p.read_text().strip(), what=str(p)))
            for p in (kept, orphaned)]
    assert all(alive(pid) for pid in pids)
    svc.stop()
    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid), what=f"grandchild {pid} to end")


def test_a_private_port_another_process_listens_on_is_not_taken_for_the_service():
    # Two pytest-xdist workers can be handed the same free port: the second service
    # cannot listen there, and must not be taken for up because the first one is.
    from tapproxy.supervisor.processes import SUPPORTED

    if not SUPPORTED:
        pytest.skip("process lookup needs Linux /proc")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        svc = ServiceProcess("late", [sys.executable, "-m", "http.server", "--bind",
                                      "127.0.0.1", "{port}"], private_port=port,
                             start_timeout=20)
        with pytest.raises(ProxyError, match="exited with code"):
            svc.start({})
