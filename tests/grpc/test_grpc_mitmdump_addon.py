"""`mitmdump -s addons/record.py` records h2c gRPC too (the script adds H2cPriorKnowledge)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc

from tapproxy.capture import Exchange, open_capture
from tests.conftest import ROOT, free_port, wait_for
from tests.grpc.conftest import run_calls
from tests.grpc.test_grpc_proxy import EXPECTED

MITMDUMP = Path(sys.executable).with_name("mitmdump")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def test_mitmdump_script_records_h2c_grpc_calls(tmp_path, confdir, echo, start_echo):
    server = start_echo()
    port, output = free_port(), tmp_path / "addon.tap"
    err = tmp_path / "mitmdump.stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [MITMDUMP, "-q", "-p", str(port), "-s", ROOT / "addons" / "record.py",
             "--set", f"tapproxy_output={output}", "--set", f"confdir={confdir}"],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    try:
        wait_for(lambda: proc.poll() is None and _listening(port), what="mitmdump")
        with grpc.insecure_channel(server.target, options=[
                ("grpc.http_proxy", f"http://addon:tap@127.0.0.1:{port}")]) as ch:
            outcomes = run_calls(echo, ch)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [(o.method, o.code) for o in outcomes] == EXPECTED
    with open_capture(output) as reader:
        xs = [r for r in reader if isinstance(r, Exchange)]
    assert [x.request.path.rsplit("/", 1)[1] for x in xs] == [m for m, _ in EXPECTED]
    names = [x.grpc_status_name or x.error.kind for x in xs]
    # The deadline: the client's cancel, unless the server's own deadline answered first.
    assert names[2] in ("client_closed", "DEADLINE_EXCEEDED")
    assert names[:2] + names[3:] == [c for _, c in EXPECTED[:2] + EXPECTED[3:]]
    assert {x.caller.name for x in xs} == {"addon"}
