"""Callers named by the local process that owns the client socket (Linux /proc, netlink).

Real clients with no proxy settings and no name of their own: curl and Python
subprocesses, and requests inside this very process (which also runs the proxy).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import requests

from tapproxy.supervisor.options import ProcessRule
from tapproxy.supervisor.processes import SUPPORTED
from tests.conftest import free_port, wait_for

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


_KEEP_ALIVE_CLIENT = """
import base64, http.client, sys
proxy_port, target = int(sys.argv[1]), sys.argv[2]
def get(conn, path, headers={}):
    conn.request("GET", target + path, headers=headers)
    conn.getresponse().read()
kept = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=20)
get(kept, "/before")
auth = {"Proxy-Authorization": "Basic " + base64.b64encode(b"checkout:tap").decode()}
get(http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=20), "/as-user", auth)
get(kept, "/after")  # the same connection as /before
"""


def test_a_kept_alive_connection_takes_up_its_process_s_new_name(proxy, echo):
    # The process is named on its kept-alive connection, then calls as a proxy user on
    # another: from then on that user is its name, on the first connection too.
    port = int(proxy.url.rpartition(":")[2])
    subprocess.run([sys.executable, "-c", _KEEP_ALIVE_CLIENT, str(port), echo.url],
                   env=NO_PROXY_ENV, check=True, timeout=30)
    assert callers(proxy) == {"/before": (PYTHON, "process"),
                              "/as-user": ("checkout", "proxy-auth"),
                              "/after": ("checkout", "proxy-user")}
    assert len({x.caller.address for x in proxy.exchanges()
                if x.request.path != "/as-user"}) == 1  # one connection


def test_a_caller_process_map_names_by_command_line_or_executable(fronted):
    proxy, url = fronted(caller_processes=(ProcessRule("* --as-billing", "billing"),
                                           ProcessRule("curl", "edge")))
    python_get(f"{url}/mapped", "--as-billing")
    python_get(f"{url}/unmapped")
    curl(f"{url}/by-executable")
    assert callers(proxy) == {"/mapped": ("billing", "rule"),
                              "/unmapped": (PYTHON, "process"),
                              "/by-executable": ("edge", "rule")}


def test_a_started_service_and_the_processes_it_starts_carry_its_name(fronted):
    proxy, url = fronted(caller_processes=(ProcessRule("curl", "not-this-one"),))
    # A shell standing for a service tapproxy started; the curl it runs is its child.
    shell = subprocess.Popen(["sh", "-c", f'read go; curl -q -sS -o /dev/null "{url}/child"'],
                             stdin=subprocess.PIPE, env=NO_PROXY_ENV)
    proxy.handle.recorder.processes.add_service(shell.pid, "orders")
    shell.communicate(b"go\n", timeout=30)
    assert shell.returncode == 0
    # The started service comes before the --caller-process map.
    assert callers(proxy) == {"/child": ("orders", "service")}


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
    keep = raw.dup()  # a failed handshake closes `raw`: the socket stays ours, to be found
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


# A service of its own process: answers on the port it is given; with a next hop it
# calls it first (urllib honours HTTP_PROXY: its proxy user is its own name).
CHAIN_SERVICE = """
import http.server, sys, urllib.request
port, next_hop = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200
        if next_hop:
            try:
                urllib.request.urlopen(next_hop + self.path, timeout=20).read()
            except urllib.error.HTTPError as e:
                status = 502
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def start_chain_service(port: int, env: dict, next_hop: str | None = None
                        ) -> subprocess.Popen:
    argv = [sys.executable, "-c", CHAIN_SERVICE, str(port), *([next_hop] if next_hop else [])]
    proc = subprocess.Popen(argv, env=env)

    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(up, timeout=20, what=f"the service on port {port}")
    return proc


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def test_callees_are_named_by_their_process_both_ways(proxy):
    leaf_port, orders_port = free_port(), free_port()
    leaf = start_chain_service(leaf_port, NO_PROXY_ENV)
    orders = start_chain_service(orders_port, {**NO_PROXY_ENV, **proxy.env("orders")},
                                 f"http://127.0.0.1:{leaf_port}")
    try:
        r = requests.get(f"http://127.0.0.1:{orders_port}/buy",
                         proxies={"http": proxy.url_as("tests")}, timeout=20)
        assert r.status_code == 200
    finally:
        stop(orders, leaf)
    calls = {(x.caller.name, x.callee.name): x for x in proxy.exchanges()}
    assert set(calls) == {("tests", "orders"), ("orders", PYTHON)}
    to_orders, to_leaf = calls["tests", "orders"], calls["orders", PYTHON]
    # orders is named as the callee by the proxy user its own process calls with.
    assert (to_orders.callee.source, to_orders.callee.pid) == ("proxy-user", orders.pid)
    assert to_orders.callee.address == f"127.0.0.1:{orders_port}"
    # The leaf never calls: its executable's name, with its PID and command line.
    assert (to_leaf.callee.source, to_leaf.callee.pid) == ("process", leaf.pid)
    assert "http.server" in to_leaf.callee.command


def test_two_services_of_one_executable_and_a_reused_port_are_told_apart(proxy):
    ports = [free_port(), free_port()]
    first = [start_chain_service(p, NO_PROXY_ENV) for p in ports]
    via = {"http": proxy.url_as("tests")}
    try:
        for p in ports:
            requests.get(f"http://127.0.0.1:{p}/a", proxies=via, timeout=20)
    finally:
        stop(*first)
    again = start_chain_service(ports[0], NO_PROXY_ENV)  # another process, the same port
    try:
        requests.get(f"http://127.0.0.1:{ports[0]}/b", proxies=via, timeout=20)
    finally:
        stop(again)
    names = [(x.request.path, x.callee.name, x.callee.pid) for x in proxy.exchanges()]
    assert sorted(names) == sorted([("/a", PYTHON, first[0].pid),
                                    ("/a", f"{PYTHON}#2", first[1].pid),
                                    ("/b", f"{PYTHON}#3", again.pid)])


def test_a_service_in_the_proxys_own_process_stays_an_address(proxy, echo):
    requests.get(f"{echo.url}/in-process", proxies={"http": proxy.url}, timeout=20)
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source, x.callee.pid) == ("127.0.0.1", "host", None)


def test_turned_off_callees_stay_addresses(start_proxy):
    proxy = start_proxy(process_callers=False)
    port = free_port()
    leaf = start_chain_service(port, NO_PROXY_ENV)
    try:
        requests.get(f"http://127.0.0.1:{port}/x", proxies={"http": proxy.url}, timeout=20)
    finally:
        stop(leaf)
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source) == ("127.0.0.1", "host")


def test_a_leaf_with_a_proxy_setting_is_named_by_it_before_it_ever_calls(proxy):
    port = free_port()
    leaf = start_chain_service(port, {**NO_PROXY_ENV, **proxy.env("payments")})
    try:
        requests.get(f"http://127.0.0.1:{port}/pay", proxies={"http": proxy.url_as("tests")},
                     timeout=20)
    finally:
        stop(leaf)
    [x] = proxy.exchanges()
    assert (x.callee.name, x.callee.source, x.callee.pid) == ("payments", "proxy-user",
                                                              leaf.pid)
    # The caller carries its process too, so readers can name it the same everywhere.
    assert (x.caller.name, x.caller.pid) == ("tests", os.getpid())
