"""The proxy never forwards to itself, however its address is spelled.

Raw sockets against the real `tapproxy record` (its open files are counted from /proc)
and the real embedded proxy: a request whose target is the proxy's own port, written as
any spelling the C library resolves to it, gets one clear answer and leaves one record,
and the control API cannot be driven through the proxy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tapproxy.capture import Exchange, open_capture
from tapproxy.supervisor.options import Address, ReverseSpec
from tapproxy.supervisor.own_addresses import OwnAddresses, ip_of
from tests.conftest import ROOT, TAPPROXY, free_port

# Each of these is 127.0.0.1 (or this machine) to inet_aton / getaddrinfo.
SPELLINGS = ["127.1", "0x7f000001", "2130706433", "[::ffff:127.0.0.1]", "127.000.000.001",
             "localhost", "0177.0.0.1", "0.0.0.0", "LOCALHOST", "localhost."]


def _exchange(sock: socket.socket, raw: bytes) -> bytes:
    """Send `raw`, read the answer's head and body (the proxy closes after it, or not)."""
    sock.sendall(raw)
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def recording(tmp_path: Path, confdir: Path):
    """A real `tapproxy record`: (process, its port, its capture)."""
    port, output = free_port(), tmp_path / "run.tap"
    proc = subprocess.Popen([*TAPPROXY, "record", "-o", str(output), "--listen",
                             f"127.0.0.1:{port}", "--control", "off", "--confdir",
                             str(confdir), "--no-process-callers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("export HTTPS_PROXY="):
            break
    yield proc, port, output
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def test_a_request_to_the_proxy_itself_is_refused_by_every_spelling(recording):
    proc, port, output = recording
    before = _open_files(proc.pid)
    kept_open = []
    try:
        for host in SPELLINGS:
            s = socket.create_connection(("127.0.0.1", port))
            kept_open.append(s)  # the client keeps its connection open
            answer = _exchange(s, f"GET http://{host}:{port}/loop HTTP/1.1\r\nHost: "
                                  f"{host}:{port}\r\nConnection: close\r\n\r\n".encode())
            assert _status(answer) == 403, (host, answer[:200])
            assert b"does not forward to its own forward proxy listener" in answer
        # One connection each from the client, none from the proxy to itself (a loop
        # opened thousands within a second).
        assert _open_files(proc.pid) <= before + len(SPELLINGS) + 5
    finally:
        for s in kept_open:
            s.close()
    proc.send_signal(2)
    assert proc.wait(30) == 0
    err = proc.stderr.read().splitlines()
    assert "tapproxy: warning: refused GET to its own forward proxy listener" in err
    assert all(len(line) <= 80 for line in err), err
    with open_capture(output) as reader:
        xs = [r for r in reader if isinstance(r, Exchange)]
    assert [(x.request.path, x.status) for x in xs] == [("/loop", 403)] * len(SPELLINGS)


def test_a_loop_through_a_name_not_recognised_stops_at_its_first_hop(start_proxy):
    # A reverse listener whose upstream is its own port, spelled so that neither
    # mitmproxy's self-connect check nor the address comparison sees it: only the
    # proxy noticing its own connection arriving stops it.
    port = free_port()
    proxy = start_proxy(reverse=(ReverseSpec("self", f"http://127.1:{port}",
                                             Address("127.0.0.1", port)),))
    before = len(os.listdir("/proc/self/fd"))
    with socket.create_connection(("127.0.0.1", port)) as s:
        answer = _exchange(s, b"GET /loop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status(answer) == 508, answer[:300]
        assert b"loop detected" in answer
        assert len(os.listdir("/proc/self/fd")) <= before + 10
    [x] = proxy.exchanges()  # the caller's exchange; not the proxy's hop to itself
    assert (x.request.path, x.status, x.callee.name) == ("/loop", 508, "self")


# -- the control API ---------------------------------------------------------------


def _open_tests(proxy) -> list[str]:
    return httpx.get(f"{proxy.control_url}/tests", timeout=10).json()["open"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_the_control_api_is_refused_by_every_spelling(proxy, host):
    control = proxy.handle.control.port
    body = json.dumps({"name": "evil"}).encode()
    with socket.create_connection(("127.0.0.1", proxy.options.listen.port)) as s:
        answer = _exchange(s, (f"POST http://{host}:{control}/tests/start HTTP/1.1\r\n"
                               f"Host: {host}:{control}\r\nContent-Type: application/json\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert _status(answer) == 403, answer[:300]
    assert b"does not forward to its own control API" in answer
    with socket.create_connection(("127.0.0.1", proxy.options.listen.port)) as s:
        answer = _exchange(s, f"CONNECT {host}:{control} HTTP/1.1\r\n"
                              f"Host: {host}:{control}\r\n\r\n".encode())
    assert _status(answer) == 403, answer[:300]
    assert _open_tests(proxy) == []
    assert [(x.request.method, x.status) for x in proxy.exchanges()] == [
        ("POST", 403), ("CONNECT", 403)]


def _alias_of_loopback() -> str | None:
    """A name in /etc/hosts for 127.0.0.1 other than those the proxy knows by name."""
    known = {"localhost", socket.gethostname().lower()}
    for line in Path("/etc/hosts").read_text().splitlines():
        words = line.partition("#")[0].split()
        if words and words[0] == "127.0.0.1":
            for name in words[1:]:
                if name.lower() not in known and not name.endswith(".localhost"):
                    return name
    return None


def test_the_control_api_refuses_what_the_proxy_forwards_under_an_alias(proxy):
    alias = _alias_of_loopback()
    if alias is None:
        pytest.skip("no other name for 127.0.0.1 in /etc/hosts")
    r = httpx.post(f"http://{alias}:{proxy.handle.control.port}/tests/start",
                   json={"name": "evil"}, proxy=proxy.url, timeout=10)
    assert r.status_code == 403 and "came through the proxy" in r.json()["error"]
    # Through a CONNECT tunnel too: the tunnel opens, what goes through it is refused.
    body = json.dumps({"name": "evil"}).encode()
    target = f"{alias}:{proxy.handle.control.port}"
    with socket.create_connection(("127.0.0.1", proxy.options.listen.port)) as s:
        opened = _exchange(s, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert _status(opened) == 200, opened
        answer = _exchange(s, (f"POST /tests/start HTTP/1.1\r\nHost: {target}\r\n"
                               "Content-Type: application/json\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert _status(answer) == 403 and b"came through the proxy" in answer
    assert _open_tests(proxy) == []
    assert [(x.request.path, x.status) for x in proxy.exchanges()] == [
        ("/tests/start", 403), ("/tests/start", 403)]


# -- the comparison itself ----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["127.1", "0x7f000001", "2130706433", "::ffff:127.0.0.1",
                                      "[::ffff:127.0.0.1]", "127.000.000.001", "0177.0.0.1"])
def test_every_ipv4_spelling_is_read_as_the_c_library_reads_it(spelling):
    assert str(ip_of(spelling)) == "127.0.0.1"


def test_names_and_other_ports_are_not_addresses():
    assert ip_of("runsc") is None and ip_of("") is None
    own = OwnAddresses()
    own.add("control API", Address("127.0.0.1", 8081))
    assert own.named_by("127.1", 8082) is None
    assert own.named_by("10.9.8.7", 8081) is None
    assert own.named_by("::1", 8081) == ("control API", Address("127.0.0.1", 8081))


def test_a_wildcard_listener_is_reached_through_every_address_of_this_machine():
    import psutil

    own = OwnAddresses()
    own.add("forward proxy listener", Address("0.0.0.0", 8080))
    mine = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET]
    assert mine and all(own.named_by(a, 8080) is not None for a in mine)
    assert own.named_by("192.0.2.200", 8080) is None or "192.0.2.200" in mine
