"""Callers named by the local process that owns the client socket (Linux /proc, netlink).

Real clients with no proxy settings and no name of their own: curl and Python
subprocesses, and requests inside this very process (which also runs the proxy).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tapproxy.proxy.options import ProcessRule
from tapproxy.proxy.processes import SUPPORTED
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="process lookup needs Linux /proc")

PYTHON = os.path.basename(os.path.realpath(sys.executable))  # e.g. python3.12
NO_PROXY_ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


def curl(*args: str) -> None:
    subprocess.run(["curl", "-q", "-sS", "--fail", "-o", "/dev/null", *args],
                   env=NO_PROXY_ENV, check=True, timeout=30)


def python_get(url: str, *extra: str) -> None:
    code = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()"
    subprocess.run([sys.executable, "-c", code, url, *extra], env=NO_PROXY_ENV, check=True,
                   timeout=30)


def callers(proxy) -> dict[str, tuple[str, str]]:
    return {x.request.path: (x.caller.name, x.caller.source) for x in proxy.exchanges()}


def test_callers_of_a_reverse_listener_are_named_by_their_process(fronted):
    proxy, url = fronted()
    curl(f"{url}/curl")
    python_get(f"{url}/python")
    requests.get(f"{url}/in-process", timeout=10)  # this very process, which runs the proxy
    assert callers(proxy) == {"/curl": ("curl", "process"), "/python": (PYTHON, "process"),
                              "/in-process": (PYTHON, "process")}
    x = proxy.exchanges()[0]
    assert x.caller.address.startswith("127.0.0.1:")  # the address is still kept


def test_a_forward_client_without_credentials_gets_its_process_name(proxy, echo):
    curl("-x", proxy.url, f"{echo.url}/no-credentials")
    curl("-x", proxy.url_as("checkout"), f"{echo.url}/credentials")
    curl("-x", proxy.url, "-H", "x-tapproxy-caller: worker", f"{echo.url}/header")
    # Credentials and the header still win over the process.
    assert callers(proxy) == {"/no-credentials": ("curl", "process"),
                              "/credentials": ("checkout", "proxy-auth"),
                              "/header": ("worker", "header")}


def test_a_caller_process_map_names_by_command_line_or_executable(fronted):
    proxy, url = fronted(caller_processes=(ProcessRule("* --as-billing", "billing"),
                                           ProcessRule("curl", "edge")))
    python_get(f"{url}/mapped", "--as-billing")
    python_get(f"{url}/unmapped")
    curl(f"{url}/by-executable")
    assert callers(proxy) == {"/mapped": ("billing", "process"),
                              "/unmapped": (PYTHON, "process"),
                              "/by-executable": ("edge", "process")}


def test_a_started_service_and_the_processes_it_starts_carry_its_name(fronted):
    proxy, url = fronted(caller_processes=(ProcessRule("curl", "not-this-one"),))
    # A shell standing for a service tapproxy started; the curl it runs is its child.
    shell = subprocess.Popen(["sh", "-c", f'read go; curl -q -sS -o /dev/null "{url}/child"'],
                             stdin=subprocess.PIPE, env=NO_PROXY_ENV)
    proxy.handle.recorder.processes.add_service(shell.pid, "orders")
    shell.communicate(b"go\n", timeout=30)
    assert shell.returncode == 0
    # The started service comes before the --caller-process map.
    assert callers(proxy) == {"/child": ("orders", "process")}


def test_one_lookup_per_connection_however_many_requests(fronted):
    proxy, url = fronted()
    with requests.Session() as s:  # one keep-alive connection
        for i in range(5):
            assert s.get(f"{url}/{i}", timeout=10).status_code == 200
    assert set(callers(proxy).values()) == {(PYTHON, "process")}
    assert proxy.handle.recorder.processes.lookups == 1


def test_turned_off_the_caller_stays_an_address(fronted):
    proxy, url = fronted(process_callers=False)
    curl(f"{url}/off")
    assert callers(proxy) == {"/off": ("127.0.0.1", "peer")}


def test_live_spans_see_the_process_name_too(fronted):
    # Live spans need the name when the request starts: it is known by then.
    proxy, url = fronted(inject_traceparent=True)
    out = subprocess.run(["curl", "-q", "-sS", "--fail", f"{url}/traced"], env=NO_PROXY_ENV,
                         capture_output=True, text=True, check=True, timeout=30)
    seen = {k.lower(): v for k, v in __import__("json").loads(out.stdout)["headers"]}
    assert "traceparent" in seen
    [x] = proxy.exchanges()
    assert (x.caller.name, x.caller.source) == ("curl", "process")


REFUSING_CLIENT = """
import socket, ssl, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
    try:
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    except ssl.SSLCertVerificationError:
        print("refused", flush=True)
    sys.stdin.readline()  # alive until the test has read the record
"""


def test_a_client_refusing_the_ca_is_named_by_its_process(fronted):
    proxy, url = fronted()
    # Trusting only the system's CAs, the client aborts the handshake with our CA.
    client = subprocess.Popen([sys.executable, "-c", REFUSING_CLIENT, url.rsplit(":", 1)[1]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=NO_PROXY_ENV)
    try:
        assert client.stdout.readline() == "refused\n"
        wait_for(proxy.exchanges, timeout=10, what="the failed handshake to be recorded")
    finally:
        client.communicate("\n", timeout=30)
    [x] = proxy.exchanges()
    assert x.error.kind == "tls"
    assert (x.caller.name, x.caller.source, x.callee.name) == (PYTHON, "process", "echo")
