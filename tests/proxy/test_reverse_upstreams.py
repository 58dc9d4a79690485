"""A reverse or `--start` listener whose service is down, or still starting.

The forward proxy answers a request to a service that is down with a 502 and records
it as `refused`; a listener in front of a service does the same, and while a `--start`
service is still coming up (its public port accepts already) it holds the request until
the service listens. Raw sockets and curl against the real embedded proxy and the real
`tapproxy record`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, open_capture
from tapproxy.supervisor.options import Address, ReverseSpec
from tests.conftest import ROOT, TAPPROXY, free_port, run_cli, wait_for

# Listens on argv[1] once the file argv[2] exists (or exits 3 if argv[3] is "fail");
# answers with the path and the Host it was sent, and redirects /login to /home as
# many web services do, with an absolute URL built from that Host.
LATE = """
import os, sys, time
while not os.path.exists(sys.argv[2]): time.sleep(0.02)
if sys.argv[3] == "fail": sys.exit(3)
from aiohttp import web
async def answer(request):
    if request.path == "/login":
        raise web.HTTPFound(f"http://{request.host}/home")
    return web.json_response({"path": request.path, "host": request.host})
app = web.Application(); app.router.add_get("/{tail:.*}", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _get(port: int, path: str, host: str = "127.0.0.1") -> bytes:
    """One HTTP/1.1 GET on a raw socket (Host: `host`:`port`); everything the server
    sends until it closes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Connection: close\r\n\r\n".encode())
        s.settimeout(60)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("how", ["reverse", "start"])
def test_a_service_that_is_down_gets_a_502_and_a_record(start_proxy, how, services):
    from tests.proxy.test_clients import echo_app

    port = free_port()
    if how == "reverse":  # nothing ever listened there
        upstream = f"http://127.0.0.1:{free_port()}"
    else:  # a fronted service that has stopped
        gone = services.start("gone", echo_app())
        upstream = gone.url
        services.stop_all()
    proxy = start_proxy(reverse=(ReverseSpec("orders", upstream, Address("127.0.0.1", port)),))
    answer = _get(port, "/orders/7")
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    [x] = proxy.exchanges()
    assert (x.callee.name, x.request.method, x.request.path) == ("orders", "GET", "/orders/7")
    assert x.response is None and x.error.kind == "refused", x.error


def _record_starting(tmp_path: Path, confdir: Path, mode: str, go: Path | None = None):
    """`tapproxy record --start late@PORT=…` whose service waits for the file `go`."""
    port, output = free_port(), tmp_path / "run.tap"
    go = go or tmp_path / "go"
    script = tmp_path / "late.py"
    script.write_text(LATE)
    spec = f"late@{port}={sys.executable} {script} {{port}} {go} {mode}"
    proc = subprocess.Popen([*TAPPROXY, "record", "-o", str(output), "--listen",
                             f"127.0.0.1:{free_port()}", "--control", "off", "--confdir",
                             str(confdir), "--start", spec], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(accepts, 30, "the public port")  # the service itself cannot listen yet
    return proc, port, go, output


def test_a_request_while_the_service_starts_waits_for_it(tmp_path, confdir):
    proc, port, go, output = _record_starting(tmp_path, confdir, "ok")
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET /early HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            go.touch()  # only now may the service listen
            s.settimeout(60)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
        assert data.endswith(f'{{"path": "/early", "host": "127.0.0.1:{port}"}}'.encode())
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, proc.stderr.read()
    with open_capture(output) as reader:
        [x] = [r for r in reader if isinstance(r, Exchange)]
    assert (x.callee.name, x.request.path, x.status) == ("late", "/early", 200)


def _read_by_peer(s: socket.socket) -> bool:
    """Whether the other end of loopback connection `s` has read all we sent: its
    socket's receive queue (Linux /proc/net/tcp, hex ports) is empty."""
    here, there = s.getsockname()[1], s.getpeername()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == there and int(remote.split(":")[1], 16) == here:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def test_a_request_while_the_service_fails_to_start_gets_a_502(tmp_path, confdir):
    proc, port, go, _ = _record_starting(tmp_path, confdir, "fail")
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"GET /early HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            # Only once the proxy has read the request is it one that waits: on a loaded
            # machine the service could otherwise fail (and the run end) before that.
            wait_for(lambda: _read_by_peer(s), what="the proxy to read the request")
            go.touch()  # the service exits with 3 instead of listening
            s.settimeout(60)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    finally:
        code = proc.wait(60)
    assert code == 2
    assert "service late exited with code 3" in proc.stderr.read()
    assert data.startswith(b"HTTP/1.1 502 "), data
    assert b"service late did not start" in data


# -- what the service sees, and what the record shows --------------------------------


def host_app() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        if request.path == "/login":
            raise web.HTTPFound(f"http://{request.host}/home")
        return web.json_response({"path": request.path, "host": request.host})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


def test_a_started_service_sees_its_callers_host_and_redirects_to_the_public_port(
        tmp_path, confdir):
    go = tmp_path / "go"
    go.touch()  # listen at once
    proc, port, _, output = _record_starting(tmp_path, confdir, "ok", go)
    try:
        assert b'"host": "localhost:%d"' % port in _get(port, "/where", "localhost")
        login = _get(port, "/login")
        assert f"Location: http://127.0.0.1:{port}/home".lower().encode() in login.lower()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, proc.stderr.read()
    with open_capture(output) as reader:
        xs = [r for r in reader if isinstance(r, Exchange)]
    assert [x.request.url for x in xs] == [f"http://localhost:{port}/where",
                                           f"http://127.0.0.1:{port}/login"]
    shown = run_cli("show", output, "--exchange", "2").stdout
    assert f"GET http://127.0.0.1:{port}/login" in shown


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_reverse_listener_passes_its_callers_host_on(start_proxy, services, host):
    svc = services.start("site", host_app())
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("site", svc.url, Address("127.0.0.1", port)),))
    where = requests.get(f"http://{host}:{port}/where", timeout=10)
    assert where.json() == {"path": "/where", "host": f"{host}:{port}"}
    home = requests.get(f"http://{host}:{port}/login", timeout=10)  # follows the redirect
    assert home.json()["path"] == "/home" and home.history[0].status_code == 302
    xs = proxy.exchanges()  # the redirect's target came through the tap too
    assert [x.request.url for x in xs] == [f"http://{host}:{port}/{p}"
                                           for p in ("where", "login", "home")]
    assert {x.callee.address for x in xs} == {f"127.0.0.1:{svc.port}"}


def test_https_into_a_reverse_listener_records_the_public_address(start_proxy, services):
    svc = services.start("site", host_app())
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("site", svc.url, Address("127.0.0.1", port)),))
    r = requests.get(f"https://127.0.0.1:{port}/where", verify=str(proxy.ca_file), timeout=10)
    assert r.json()["host"] == f"127.0.0.1:{port}"
    [x] = proxy.exchanges()
    assert x.request.url == f"https://127.0.0.1:{port}/where"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_through_the_forward_proxy_to_our_own_listener_too(start_proxy, services, scheme):
    svc = services.start("site", host_app())
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("site", svc.url, Address("127.0.0.1", port)),))
    r = requests.get(f"{scheme}://127.0.0.1:{port}/where", verify=str(proxy.ca_file),
                     proxies={scheme: proxy.url_as("checkout")}, timeout=10)
    assert r.json()["host"] == f"127.0.0.1:{port}"
    [x] = proxy.exchanges()
    assert (x.request.url, x.callee.name, x.callee.address) == (
        f"{scheme}://127.0.0.1:{port}/where", "site", f"127.0.0.1:{svc.port}")
