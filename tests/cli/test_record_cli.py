"""`tapproxy record`, `env`, `demo` and the mitmdump addon, run as real subprocesses.

Every test drives the real command on loopback ports with real clients (curl, requests)
and then reads the capture back, as a user would after a test run.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import trustme
from aiohttp import web

from tapproxy.capture import CaptureWriter, Exchange, TestCase, new_header, open_capture
from tapproxy.capture.encoding import body_json
from tests.conftest import ROOT, TAPPROXY, free_port, run_cli, wait_for

MITMDUMP = Path(sys.executable).with_name("mitmdump")


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    """One interception CA for this module's recorders (creating one costs a second)."""
    return tmp_path_factory.mktemp("mitmconf")


def shop_app() -> web.Application:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"]), "name": "tea"})

    async def order(request: web.Request) -> web.Response:
        return web.json_response({"order": await request.json()}, status=201)

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "down for maintenance"}, status=503)

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    app.router.add_post("/orders", order)
    app.router.add_get("/broken", broken)
    return app


@pytest.fixture
def shop(services):
    return services.start("shop", shop_app())


def clean_env(**extra: str) -> dict[str, str]:
    """An environment with no inherited proxy settings or curlrc."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), **extra}


def curl(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of one curl request; curl itself must succeed."""
    out = subprocess.run(["curl", "-q", "-sS", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, env=env or clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


@dataclass
class Recording:
    """A running `tapproxy record` subprocess, ready once it has printed its exports."""

    proc: subprocess.Popen
    output: Path
    listen: int
    control: int | None
    stderr_path: Path
    banner: list[str] = field(default_factory=list)

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control}"

    def proxy_url(self, caller: str | None = None) -> str:
        user = f"{caller}:tap@" if caller else ""
        return f"http://{user}127.0.0.1:{self.listen}"

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, list[str], str]:
        """Signal it; (exit code, every stdout line, stderr) once it has exited."""
        self.proc.send_signal(sig)
        rest = self.proc.stdout.read()
        code = self.proc.wait(timeout=30)
        return code, self.banner + rest.splitlines(), self.stderr_path.read_text()


@pytest.fixture
def record(tmp_path: Path, confdir: Path):
    """Start `tapproxy record` on free ports: record(*extra_args, control=, listen=, ca_dir=)."""
    started: list[Recording] = []

    def start(*extra: str | Path, control: bool = True, listen: int | None = None,
              ca_dir: Path = confdir, output: Path | None = None) -> Recording:
        n = len(started)
        listen, ctl = listen or free_port(), free_port() if control else None
        output = output or tmp_path / f"rec{n}.tap"
        args = ["record", "-o", output, "--listen", f"127.0.0.1:{listen}",
                "--control", f"127.0.0.1:{ctl}" if control else "off",
                "--confdir", ca_dir, *extra]
        err = tmp_path / f"rec{n}.stderr"
        with open(err, "w") as stderr:
            proc = subprocess.Popen([*TAPPROXY, *map(str, args)], stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, cwd=tmp_path)
        rec = Recording(proc, output, listen, ctl, err)
        started.append(rec)
        for line in proc.stdout:
            rec.banner.append(line.rstrip("\n"))
            if line.startswith("export HTTPS_PROXY="):
                return rec
        raise AssertionError(f"tapproxy record exited with {proc.wait()} before it was "
                             f"ready:\n{err.read_text()}")

    yield start
    for rec in started:
        if rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()
        rec.proc.stdout.close()


def read_capture(path: Path) -> tuple[list[Exchange], list[TestCase], bool]:
    with open_capture(path) as reader:
        records = list(reader)
        truncated = reader.truncated
    exchanges = [r for r in records if isinstance(r, Exchange)]
    return exchanges, [r for r in records if isinstance(r, TestCase)], truncated


# --- 1. a recording session, stopped by a signal --------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_record_until_signal_writes_every_exchange_and_test_case(record, shop, sig):
    rec = record("--service", f"shop=127.0.0.1:{shop.port}")
    assert f"# forward proxy at 127.0.0.1:{rec.listen}" in rec.banner
    assert f"# control API at http://127.0.0.1:{rec.control}" in rec.banner
    assert f"export HTTP_PROXY='http://127.0.0.1:{rec.listen}'" in rec.banner

    ctl = rec.control_url
    r = requests.post(f"{ctl}/tests/start", json={"name": "test_checkout"}, timeout=10)
    assert r.status_code == 201
    proxy = ["-x", rec.proxy_url("checkout")]
    assert curl(*proxy, f"{shop.url}/items/7") == (200, '{"id": 7, "name": "tea"}')
    assert curl(*proxy, "-H", "content-type: application/json", "--data",
                '{"sku": "tea", "qty": 2}', f"{shop.url}/orders") == (
        201, '{"order": {"sku": "tea", "qty": 2}}')
    assert curl(*proxy, f"{shop.url}/broken")[0] == 503
    r = requests.post(f"{ctl}/tests/end", json={"name": "test_checkout", "outcome": "failed"},
                      timeout=10)
    assert r.json() == {"closed": "test_checkout", "outcome": "failed",
                        "requests": 3}
    assert curl(*proxy, f"{shop.url}/items/8")[0] == 200  # outside any test
    assert requests.post(f"{ctl}/tests/start", json={"name": "test_left_open"},
                         timeout=10).status_code == 201

    code, out, err = rec.stop(sig)
    assert code == 0, err
    assert "Traceback" not in err
    assert out[-1] == f"# 4 exchanges recorded to {rec.output}"
    exchanges, tests, truncated = read_capture(rec.output)
    assert not truncated
    assert [(x.request.method, x.request.path, x.status) for x in exchanges] == [
        ("GET", "/items/7", 200), ("POST", "/orders", 201), ("GET", "/broken", 503),
        ("GET", "/items/8", 200)]
    assert body_json(exchanges[1].request) == {"sku": "tea", "qty": 2}
    assert body_json(exchanges[1].response) == {"order": {"sku": "tea", "qty": 2}}
    for x in exchanges:
        assert (x.callee.name, x.callee.source) == ("shop", "service-map")
        assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
    assert [(x.test, x.test_source) for x in exchanges] == [
        ("test_checkout", "control")] * 3 + [(None, None)]
    closed, left_open = tests
    assert (closed.name, closed.outcome) == ("test_checkout", "failed")
    assert closed.started <= exchanges[0].timing.request_start
    assert closed.ended >= exchanges[2].timing.response_end
    # A test still open at shutdown is kept, visibly without an end or outcome.
    assert (left_open.name, left_open.ended, left_open.outcome) == ("test_left_open", None, None)


def handles_sigint(pid: int) -> bool:
    """Whether the process has a SIGINT handler yet (Python's is installed as it starts)."""
    status = Path(f"/proc/{pid}/status").read_text()
    [caught] = [line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")]
    return bool(int(caught, 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.45, 0.6, 0.8, 1.1, 1.5])
def test_ctrl_c_at_any_time_of_start_up_is_one_line(tmp_path, confdir, delay):
    # Ctrl-C while tapproxy imports, parses, starts mitmproxy or is up already. The delay
    # counts from when Python handles SIGINT at all: before that, the interpreter itself
    # is still starting and the default action (end, silently) is all there is.
    output = tmp_path / "x.tap"
    proc = subprocess.Popen([*TAPPROXY, "record", "-o", str(output), "--control", "off",
                             "--listen", f"127.0.0.1:{free_port()}", "--confdir",
                             str(confdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: handles_sigint(proc.pid), what="Python to handle SIGINT")
        time.sleep(delay)  # where the signal lands, not an assertion on time
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err
    if "export HTTPS_PROXY=" in out:  # it was up: a normal stop
        assert (proc.returncode, out.splitlines()[-1]) == (
            0, f"# 0 exchanges recorded to {output}"), err
    else:
        assert proc.returncode == 130, err
        assert err.splitlines() in (
            ["tapproxy: interrupted"],  # before the command line was read
            [f"tapproxy: interrupted while starting; {output} was not written"]), err
        assert not output.exists()


# --- 2. SIGKILL mid-recording ---------------------------------------------------------------


def payload(i: int) -> bytes:
    return f"{i}:".encode() + bytes([97 + i % 26]) * 2000


def bulk_app(release: threading.Event, arrived: list[str]) -> web.Application:
    async def numbered(request: web.Request) -> web.Response:
        return web.Response(body=payload(int(request.match_info["i"])),
                            content_type="text/plain")

    async def slow(request: web.Request) -> web.Response:
        arrived.append(request.match_info["k"])
        while not release.is_set():  # held open until the recorder has been killed
            await asyncio.sleep(0.02)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/n/{i}", numbered)
    app.router.add_get("/slow/{k}", slow)
    return app


def test_sigkill_mid_recording_leaves_every_flushed_exchange_readable(record, services):
    release, arrived = threading.Event(), []
    svc = services.start("bulk", bulk_app(release, arrived))
    rec = record("--service", f"bulk=127.0.0.1:{svc.port}")
    proxies = {"http": rec.proxy_url("loader")}

    def session() -> requests.Session:
        s = requests.Session()
        s.trust_env, s.proxies = False, proxies
        return s

    with session() as s:
        for i in range(200):
            r = s.get(f"{svc.url}/n/{i}", timeout=30)
            assert (r.status_code, r.content) == (200, payload(i))
    assert requests.post(f"{rec.control_url}/flush", timeout=30).json()["records"] >= 200
    stats = requests.get(f"{rec.control_url}/stats", timeout=10).json()
    assert stats["records_written"] >= 200 and stats["exchanges"] == 200

    # A burst in flight when the recorder dies: held requests, and fast ones still being
    # answered and queued for the writer.
    stop, answered = threading.Event(), []

    def hammer(k: int) -> None:
        with session() as s:
            j = 0
            while not stop.is_set():
                i = 10_000 * (k + 1) + j
                try:
                    r = s.get(f"{svc.url}/n/{i}", timeout=30)
                except requests.RequestException:
                    return
                answered.append(r.status_code)
                j += 1

    held_outcomes = []

    def held(k: int) -> None:
        with session() as s:
            try:
                held_outcomes.append(s.get(f"{svc.url}/slow/{k}", timeout=30).status_code)
            except requests.RequestException as e:
                held_outcomes.append(type(e).__name__)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=held, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(arrived) == 6 and len(answered) >= 40, what="the burst in flight")
        rec.proc.kill()
        assert rec.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop.set()
        release.set()
        for t in threads:
            t.join(30)
    assert 200 not in held_outcomes  # the recorder died with them in flight

    exchanges, _, truncated = read_capture(rec.output)  # must not raise
    seen = {}
    for x in exchanges:
        assert x.error is None and x.response is not None, x
        assert x.request.path.startswith("/n/"), "a held request cannot have completed"
        i = int(x.request.path.removeprefix("/n/"))
        assert (x.status, x.response.body) == (200, payload(i))
        assert x.caller.name == "loader" and x.callee.name == "bulk"
        seen[i] = x
    assert set(range(200)) <= set(seen)
    assert len(seen) == len(exchanges)

    show = run_cli("show", rec.output)
    assert "Traceback" not in show.stderr
    rows = [line for line in show.stdout.splitlines() if line[:1].isdigit()]
    assert len(rows) == len(exchanges)
    if truncated:
        assert show.returncode == 2
        [line] = show.stderr.splitlines()
        assert line.startswith(f"tapproxy: error: {rec.output}: ends inside record")
    else:
        assert (show.returncode, show.stderr) == (0, "")


# --- 3. a reverse listener -----------------------------------------------------------------


def test_reverse_listener_names_the_service_for_a_client_that_ignores_proxies(record, shop):
    port = free_port()
    rec = record("--reverse", f"shop={shop.url}@{port}", control=False)
    assert f"# reverse proxy for shop ({shop.url}) at 127.0.0.1:{port}" in rec.banner
    assert not any(line.startswith("# control API") for line in rec.banner)

    with requests.Session() as s:
        s.trust_env = False  # straight to the listener, as a client that knows no proxy
        r = s.get(f"http://127.0.0.1:{port}/items/3?fresh=1", timeout=10)
    assert r.json() == {"id": 3, "name": "tea"}
    assert curl("--noproxy", "*", "--data", "{}", "-H", "content-type: application/json",
                f"http://127.0.0.1:{port}/orders") == (201, '{"order": {}}')

    code, _, err = rec.stop()
    assert code == 0, err
    exchanges, _, _ = read_capture(rec.output)
    assert [(x.request.method, x.request.path, x.status) for x in exchanges] == [
        ("GET", "/items/3?fresh=1", 200), ("POST", "/orders", 201)]
    for x in exchanges:
        assert (x.callee.name, x.callee.source) == ("shop", "reverse")
        assert x.callee.address == f"127.0.0.1:{shop.port}"
    # Nobody named the caller: the process that owns its connection does.
    assert [(x.caller.name, x.caller.source) for x in exchanges] == [
        (os.path.basename(os.path.realpath(sys.executable)), "process"), ("curl", "process")]


def test_named_listeners_name_callers_that_send_no_credentials(record, shop, tcp_server):
    from tapproxy.capture import Tunnel
    from tests.proxy.test_tunnels import GREETING, greet_then_echo, recv_exactly

    browser, crawler = free_port(), free_port()
    rec = record("--listen", f"browser=127.0.0.1:{browser}", "--listen", f"crawler={crawler}")
    assert f"# forward proxy at 127.0.0.1:{rec.listen}" in rec.banner  # the unnamed one
    assert f"# forward proxy for browser at 127.0.0.1:{browser}" in rec.banner
    assert f"# forward proxy for crawler at 127.0.0.1:{crawler}" in rec.banner
    for port in (browser, crawler, rec.listen):
        assert curl("-x", f"http://127.0.0.1:{port}", f"{shop.url}/items/{port}")[0] == 200
    server = tcp_server(greet_then_echo)  # and a tunnel, named by its listener too
    with socket.create_connection(("127.0.0.1", crawler), timeout=10) as s:
        s.sendall(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert recv_exactly(s, len(GREETING)) == GREETING
    wait_for(lambda: requests.get(f"{rec.control_url}/stats", timeout=5).json()["tunnels"],
             what="the tunnel to end")
    assert "tapproxy: warning: crawler → 127.0.0.1" in rec.stderr_path.read_text()
    code, lines, err = rec.stop()
    assert code == 0, err
    assert lines[-1] == f"# 3 exchanges and 1 tunnel (not HTTP) recorded to {rec.output}"
    exchanges, _, _ = read_capture(rec.output)
    assert [(x.caller.name, x.caller.source) for x in exchanges] == [
        ("browser", "listener"), ("crawler", "listener"), ("curl", "process")]
    with open_capture(rec.output) as reader:
        [tunnel] = [r for r in reader if isinstance(r, Tunnel)]
    assert (tunnel.caller.name, tunnel.caller.source) == ("crawler", "listener")


def test_a_named_listener_on_the_unnamed_ones_address_is_a_usage_error(tmp_path, confdir):
    port = free_port()
    out = run_cli("record", "-o", tmp_path / "x.tap", "--listen", str(port),
                  "--listen", f"browser={port}", "--control", "off", "--confdir", confdir)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == (f"tapproxy: error: --listen and --listen browser=… both listen on "
                          f"127.0.0.1:{port}: give each its own port\n")


def test_only_one_listener_can_be_unnamed(tmp_path, confdir):
    out = run_cli("record", "-o", tmp_path / "x.tap", "--listen", str(free_port()),
                  "--listen", str(free_port()), "--control", "off", "--confdir", confdir)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == ("tapproxy: error: --listen: only one listener can be unnamed; name "
                          "the others NAME=[HOST:]PORT\n")


# --- 4. bad input ---------------------------------------------------------------------------


@pytest.fixture
def busy_port():
    """A loopback port something else is already listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


BAD_INPUT = [
    ("listen-in-use", lambda p: ["--listen", f"127.0.0.1:{p}"],
     ["127.0.0.1:{p}", "address already in use"]),
    ("control-in-use", lambda p: ["--control", f"127.0.0.1:{p}"],
     ["control API", "127.0.0.1:{p}", "address already in use"]),
    ("reverse-garbage", lambda p: ["--reverse", "garbage"], ["--reverse 'garbage'"]),
    ("reverse-ftp", lambda p: ["--reverse", "a=ftp://x@1"], ["'ftp://x'", "http(s)://"]),
    ("service-no-equals", lambda p: ["--service", "noequals"], ["--service 'noequals'"]),
    ("listen-not-a-port", lambda p: ["--listen", "127.0.0.1:notaport"],
     ["--listen '127.0.0.1:notaport'", "port"]),
    ("allow-hosts-bad-regex", lambda p: ["--allow-hosts", "(unclosed"],
     ["--allow-hosts '(unclosed'", "not a regular expression"]),
    ("ignore-hosts-empty", lambda p: ["--ignore-hosts", ""],
     ["bad --ignore-hosts '': an empty pattern matches every host"]),
    ("listen-name-with-esc", lambda p: ["--listen", "br\x1b[2Jowser=8090"],
     ["bad --listen name 'br\\x1b[2Jowser': has a control character"]),
    ("service-name-with-esc", lambda p: ["--service", "\x1b]0;x\x07=127.0.0.1:1"],
     ["bad --service name '\\x1b]0;x\\x07': has a control character"]),
    ("reverse-name-with-bidi", lambda p: ["--reverse", "a\u202eb=http://127.0.0.1:1@1"],
     ["bad --reverse name 'a\\u202eb': has a control character"]),
    ("caller-process-name-with-esc", lambda p: ["--caller-process", "*x*=a\x1bb"],
     ["bad --caller-process name 'a\\x1bb': has a control character"]),
    ("listen-nameless-name", lambda p: ["--listen", "=8090"], ["--listen '=8090'"]),
    ("redact-json-bad-path", lambda p: ["--redact-json", "$.[bad"], ["--redact-json", "$.[bad"]),
    ("redact-bad-path", lambda p: ["--redact", "$.[bad"], ["--redact", "$.[bad"]),
    ("output-dir-missing", lambda p: ["-o", "/nonexistent-dir/x.tap"],
     ["/nonexistent-dir/x.tap"]),
    ("confdir-cannot-be-made", lambda p: ["--confdir", "{tmp}/damaged.pem/conf"],
     ["damaged.pem/conf: cannot create the proxy's CA there: Not a directory"]),
    ("upstream-ca-missing", lambda p: ["--upstream-ca", "/missing.pem"],
     ["/missing.pem", "--upstream-ca"]),
    ("upstream-ca-not-pem", lambda p: ["--upstream-ca", str(ROOT / "README.md")],
     ["README.md: --upstream-ca is not a PEM file", "no '-----BEGIN CERTIFICATE-----'"]),
    ("upstream-ca-damaged", lambda p: ["--upstream-ca", "{tmp}/damaged.pem"],
     ["damaged.pem: --upstream-ca", "a certificate in it is damaged"]),
    ("two-reverses-on-one-port",
     lambda p: ["--reverse", f"a=http://127.0.0.1:1@{p + 1}", "--reverse", f"b=http://x@{p + 1}"],
     ["--reverse a=… and --reverse b=… both listen on 127.0.0.1:{p1}"]),
    ("reverse-on-the-proxy-port", lambda p: ["--reverse", "a=http://127.0.0.1:1@{listen}"],
     ["--listen and --reverse a=… both listen on"]),
    ("reverse-on-the-control-port", lambda p: ["--reverse", "a=http://127.0.0.1:1@{control}"],
     ["--reverse a=… and --control both listen on"]),
    ("otlp-receive-on-a-wildcard-reverse",
     lambda p: ["--reverse", f"a=http://127.0.0.1:1@0.0.0.0:{p + 1}",
                "--otlp-receive", f"127.0.0.1:{p + 1}"],
     ["--reverse a=… and --otlp-receive both listen on 127.0.0.1:{p1}"]),
]


@pytest.mark.parametrize(("args", "expected"), [pytest.param(a, e, id=i) for i, a, e in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(tmp_path, confdir, busy_port, args, expected):
    listen, control = free_port(), free_port()
    opts = {"-o": str(tmp_path / "x.tap"), "--listen": f"127.0.0.1:{listen}",
            "--control": f"127.0.0.1:{control}", "--confdir": str(confdir)}
    (tmp_path / "damaged.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                          "-----END CERTIFICATE-----\n")
    extra = [a.format(listen=listen, control=control, tmp=tmp_path) for a in args(busy_port)]
    if extra[0] in opts:
        opts[extra[0]] = extra[1]
        extra = []
    out = run_cli("record", *[x for kv in opts.items() for x in kv], *extra)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("tapproxy: error: ")
    for fragment in expected:
        assert fragment.format(p=busy_port, p1=busy_port + 1) in line
    assert "export" not in out.stdout  # it never claimed to be ready


@pytest.mark.parametrize("flag", ["--listen", "--control"])
def test_a_record_that_cannot_start_leaves_an_existing_capture_alone(tmp_path, confdir,
                                                                     busy_port, flag):
    output = tmp_path / "last-run.tap"
    writer = CaptureWriter(output, new_header())
    writer.write(TestCase(name="test_from_last_run", started=1, ended=2, outcome="passed"))
    writer.close()
    before = output.read_bytes()
    opts = {"--listen": f"127.0.0.1:{free_port()}", "--control": f"127.0.0.1:{free_port()}"}
    opts[flag] = f"127.0.0.1:{busy_port}"
    out = run_cli("record", "-o", output, "--confdir", confdir,
                  *[x for kv in opts.items() for x in kv])
    assert out.returncode == 2 and "address already in use" in out.stderr
    assert output.read_bytes() == before


def test_a_capture_written_into_a_pipe_streams_and_leaves_the_pipe_a_pipe(tmp_path, record,
                                                                          shop):
    # `-o /dev/null` or a FIFO read by another tool: a capture is normally written beside
    # its path and renamed into place, which would replace the device or pipe with a file.
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def consume() -> None:
        with open(fifo, "rb") as f:  # blocks until the recorder opens the pipe
            while chunk := f.read(65536):
                received.extend(chunk)

    consumer = threading.Thread(target=consume)
    consumer.start()
    rec = record("--service", f"shop=127.0.0.1:{shop.port}", output=fifo)
    assert curl("-x", rec.proxy_url("checkout"), f"{shop.url}/items/7")[0] == 200
    code, _, err = rec.stop()
    consumer.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not list(tmp_path.glob(".*.part"))
    copy = tmp_path / "received.tap"
    copy.write_bytes(received)
    exchanges, _, truncated = read_capture(copy)
    assert not truncated
    assert [(x.caller.name, x.callee.name, x.request.path, x.status) for x in exchanges] == [
        ("checkout", "shop", "/items/7", 200)]


def _untrusted_https(rec: Recording, shop) -> None:
    """An HTTPS request through the proxy from a client that does not trust its CA, to a
    plain-HTTP port: mitmproxy logs two warnings (server and client TLS handshakes)."""
    out = subprocess.run(
        ["curl", "-q", "-sS", "-x", rec.proxy_url(), f"https://127.0.0.1:{shop.port}/"],
        capture_output=True, text=True, env=clean_env(), timeout=30)
    assert out.returncode != 0


def test_verbose_shows_mitmproxy_warnings(record, shop):
    rec = record("-v")
    _untrusted_https(rec, shop)
    code, _, err = rec.stop()
    assert code == 0, err
    assert "mitmproxy: warning: " in err
    assert "Client TLS handshake failed" in err
    assert "Traceback" not in err


def test_without_verbose_mitmproxy_stays_quiet(record, shop):
    rec = record()
    _untrusted_https(rec, shop)
    code, _, err = rec.stop()
    assert (code, err) == (0, "")


def test_an_error_in_the_recorder_reaches_stderr_without_verbose(tmp_path, record, shop):
    # The capture goes into a pipe whose reader leaves after the first bytes: every write
    # after that fails, inside the recorder's mitmproxy hook.
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def read_a_little_then_leave() -> None:
        with open(fifo, "rb") as f:
            f.read(8)

    reader = threading.Thread(target=read_a_little_then_leave)
    reader.start()
    rec = record("--service", f"shop=127.0.0.1:{shop.port}", output=fifo)
    reader.join(timeout=30)
    for i in range(3):
        assert curl("-x", rec.proxy_url(), f"{shop.url}/items/{i}")[0] == 200
    _, _, err = rec.stop()
    assert "Broken pipe" in err, err
    assert "Traceback" not in err


# --- 5. tapproxy env ------------------------------------------------------------------------


def test_env_exports_route_curl_and_requests_through_the_recorder(tmp_path, record, services):
    ca = trustme.CA()  # the service speaks HTTPS, so the client must trust tapproxy's CA
    upstream_ca = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(upstream_ca))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    secure = services.start("secure", shop_app(), ssl_context=server_ctx)

    fresh = tmp_path / "conf"  # env creates the CA where the recorder will find it
    port = free_port()
    out = run_cli("env", "--listen", f"127.0.0.1:{port}", "--caller", "checkout",
                  "--confdir", fresh)
    assert (out.returncode, out.stderr) == (0, "")
    exports = {}
    for line in out.stdout.splitlines():
        assert line.startswith("export ")
        [(name, value)] = [kv.split("=", 1) for kv in shlex.split(line.removeprefix("export "))]
        exports[name] = value
    proxy = f"http://checkout:tap@127.0.0.1:{port}"
    ca_file = fresh / "mitmproxy-ca-cert.pem"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert exports[name] == proxy
    assert exports["NO_PROXY"] == ""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert exports[name] == str(ca_file)
    assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")

    # The recorder is started separately, on the same port and confdir, as a user would.
    rec = record("--upstream-ca", upstream_ca, "--service", f"secure=127.0.0.1:{secure.port}",
                 listen=port, ca_dir=fresh, control=False)
    script = (f'eval "$1"; curl -q -sS --fail {secure.url}/items/5 && echo && '
              f'"{sys.executable}" -c "import requests; '
              f"print(requests.get('{secure.url}/items/6', timeout=10).text)\"")
    shell = subprocess.run(["bash", "-c", script, "bash", out.stdout], capture_output=True,
                           text=True, env=clean_env(), timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines() == ['{"id": 5, "name": "tea"}', '{"id": 6, "name": "tea"}']

    code, _, err = rec.stop()
    assert code == 0, err
    exchanges, _, _ = read_capture(rec.output)
    assert [(x.request.scheme, x.request.path, x.status) for x in exchanges] == [
        ("https", "/items/5", 200), ("https", "/items/6", 200)]
    for x in exchanges:
        assert (x.caller.name, x.caller.source) == ("checkout", "proxy-auth")
        assert x.callee.name == "secure"


CALLER_NAMES = ["x/y", "a%41", "at@host", "q?x#y", "two words"]


def test_caller_names_with_url_characters_survive_the_proxy_url(tmp_path, record, shop):
    # Each name goes into HTTP_PROXY percent-encoded; curl and requests decode it before
    # they send it, so the recorder names each caller exactly as given.
    rec = record("--service", f"shop=127.0.0.1:{shop.port}", control=False)
    script = (f'eval "$1"; curl -q -sS --fail {shop.url}/items/1 >/dev/null && '
              f'"{sys.executable}" -c "import requests; '
              f"requests.get('{shop.url}/items/2', timeout=10).raise_for_status()\"")
    for name in CALLER_NAMES:
        out = run_cli("env", "--listen", f"127.0.0.1:{rec.listen}", "--caller", name,
                      "--confdir", tmp_path / "conf")
        assert (out.returncode, out.stderr) == (0, "")
        shell = subprocess.run(["bash", "-c", script, "bash", out.stdout],
                               capture_output=True, text=True, env=clean_env(), timeout=60)
        assert shell.returncode == 0, (name, shell.stderr)
    code, _, err = rec.stop()
    assert code == 0, err
    exchanges, _, _ = read_capture(rec.output)
    assert [(x.caller.name, x.caller.source, x.request.path) for x in exchanges] == [
        (name, "proxy-auth", path) for name in CALLER_NAMES
        for path in ("/items/1", "/items/2")]


@pytest.mark.parametrize(("name", "expected"), [
    ("a:b", "bad --caller 'a:b': use printable ASCII without ':'"),
    ("café", "bad --caller 'café': use printable ASCII without ':'"),
    ("red\x1b[31m", "bad --caller name 'red\\x1b[31m': has a control character"),
])
def test_a_caller_name_that_cannot_survive_the_proxy_url_is_refused(tmp_path, name,
                                                                    expected):
    out = run_cli("env", "--caller", name, "--confdir", tmp_path / "conf")
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.splitlines() == [f"tapproxy: error: {expected}"]


# --- 6. the mitmdump addon ------------------------------------------------------------------


def test_mitmdump_addon_records_the_same_format(tmp_path, confdir, shop):
    port, ctl = free_port(), free_port()
    output = tmp_path / "addon.tap"
    err = tmp_path / "mitmdump.stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [MITMDUMP, "-q", "-p", str(port), "-s", ROOT / "addons" / "record.py",
             "--set", f"tapproxy_output={output}",
             "--set", f"tapproxy_service=shop=127.0.0.1:{shop.port}",
             "--set", f"tapproxy_control=127.0.0.1:{ctl}", "--set", f"confdir={confdir}",
             "--set", "tapproxy_redact_name=tenant"],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    try:
        control = f"http://127.0.0.1:{ctl}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mitmdump exited {proc.returncode}: {err.read_text()}")
            try:
                return requests.get(f"{control}/stats", timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, what="mitmdump's control API")
        requests.post(f"{control}/tests/start", json={"name": "test_addon"}, timeout=10)
        proxy = ["-x", f"http://web:tap@127.0.0.1:{port}"]
        assert curl(*proxy, f"{shop.url}/items/1?tenant=acme&access_token=tok") == (
            200, '{"id": 1, "name": "tea"}')
        assert curl(*proxy, "--data", '{"a": 1}', f"{shop.url}/orders")[0] == 201
        # Not through the proxy: the control API refuses itself as a target.
        assert curl(*proxy, f"{control}/stats")[0] == 403
        requests.post(f"{control}/tests/end", json={"name": "test_addon", "outcome": "passed"},
                      timeout=10)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err.read_text()

    with open_capture(output) as reader:
        assert reader.header.tool.startswith("tapproxy ")
        records = list(reader)
        assert not reader.truncated
    exchanges = [r for r in records if isinstance(r, Exchange)]
    refused = exchanges.pop()
    assert (refused.request.path, refused.status) == ("/stats", 403)
    assert [(x.request.method, x.request.path, x.status) for x in exchanges] == [
        ("GET", "/items/1?tenant=%3Credacted%3E&access_token=%3Credacted%3E", 200),
        ("POST", "/orders", 201)]
    for x in exchanges:
        assert (x.callee.name, x.callee.source) == ("shop", "service-map")
        assert (x.caller.name, x.caller.source) == ("web", "proxy-auth")
        assert x.test == "test_addon"
    assert body_json(exchanges[1].response) == {"order": {"a": 1}}
    [case] = [r for r in records if isinstance(r, TestCase)]
    assert (case.name, case.outcome) == ("test_addon", "passed")


def test_mitmdump_addon_takes_a_json_path_in_redact_name_as_the_cli_takes_it_in_redact(
        tmp_path, confdir, shop):
    # `--redact '$.note'` is a JSON path for `tapproxy record`; the addon's
    # tapproxy_redact_name maps through the same function, so it is one there too.
    port = free_port()
    output = tmp_path / "addon.tap"
    err = tmp_path / "mitmdump.stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [MITMDUMP, "-q", "-p", str(port), "-s", ROOT / "addons" / "record.py",
             "--set", f"tapproxy_output={output}", "--set", f"confdir={confdir}",
             "--set", "tapproxy_redact_name=$.note"],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mitmdump exited {proc.returncode}: {err.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return True
            except OSError:
                return False

        wait_for(ready, what="mitmdump's listener")
        assert curl("-x", f"http://127.0.0.1:{port}", "-H", "Content-Type: application/json",
                    "--data", '{"note": "n1", "a": 1}', f"{shop.url}/orders")[0] == 201
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err.read_text()
    with open_capture(output) as reader:
        [x] = [r for r in reader if isinstance(r, Exchange)]
    assert body_json(x.request) == {"note": "<redacted>", "a": 1}


def test_mitmdump_addon_names_listeners_and_records_tunnels_and_failed_connects(
        tmp_path, confdir, shop, tcp_server):
    from tapproxy.capture import Tunnel
    from tests.proxy.test_tunnels import GREETING, greet_then_echo, recv_exactly

    port, browser, ctl = free_port(), free_port(), free_port()
    output = tmp_path / "addon.tap"
    err = tmp_path / "mitmdump.stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [MITMDUMP, "-q", "--mode", f"regular@{port}", "--mode", f"regular@{browser}",
             "-s", ROOT / "addons" / "record.py", "--set", f"tapproxy_output={output}",
             "--set", f"tapproxy_listener=browser={browser}", "--allow-hosts", r"^127\.",
             "--set", f"tapproxy_control=127.0.0.1:{ctl}", "--set", f"confdir={confdir}"],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    server = tcp_server(greet_then_echo)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mitmdump exited {proc.returncode}: {err.read_text()}")
            try:
                return requests.get(f"http://127.0.0.1:{ctl}/stats", timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, what="mitmdump's control API")
        assert curl("-x", f"http://127.0.0.1:{browser}", f"{shop.url}/items/1")[0] == 200
        # By name, not address: left out by --allow-hosts, though mitmproxy parses it.
        assert curl("-x", f"http://127.0.0.1:{port}", f"http://localhost:{shop.port}/items/2",
                    "--noproxy", "")[0] == 200
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert recv_exactly(s, len(GREETING)) == GREETING
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            out = subprocess.run(["curl", "-q", "-sS", "-x", f"http://127.0.0.1:{port}",
                                  f"https://127.0.0.1:{closed.getsockname()[1]}/"],
                                 capture_output=True, text=True, timeout=20)
            assert out.returncode != 0
        wait_for(lambda: requests.get(f"http://127.0.0.1:{ctl}/stats", timeout=5)
                 .json()["tunnels"] == 2, what="the tunnels to end")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    assert "Traceback" not in text
    assert sum("tapproxy: warning:" in line for line in text.splitlines()) == 1
    with open_capture(output) as reader:
        records = list(reader)
    named, refused = [r for r in records if isinstance(r, Exchange)]
    left_out, tunnel = sorted((r for r in records if isinstance(r, Tunnel)),
                              key=lambda t: t.reason)
    assert (named.caller.name, named.caller.source, named.status) == ("browser", "listener", 200)
    assert (refused.request.method, refused.error.kind) == ("CONNECT", "refused")
    assert (tunnel.reason, tunnel.first_from_server) == ("server_first", GREETING)
    assert (left_out.reason, left_out.callee.name) == ("ignored", "localhost")


# --- 7. the demo ----------------------------------------------------------------------------


def test_demo_runs_the_scenario_and_records_it(tmp_path, confdir):
    output = tmp_path / "demo.tap"
    out = run_cli("demo", "-o", output, "--confdir", confdir, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    outcome = {line.split()[0]: line.split()[1] for line in lines
               if line.strip().startswith("test_") and len(line.split()) == 2}
    assert outcome == {"test_place_order": "passed", "test_out_of_stock": "passed",
                       "test_declined_card": "failed"}
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 9))
    statuses = [r[7] for r in rows]
    assert "500" in statuses and "502" in statuses
    assert f"tapproxy show {output} --exchange 7" in out.stdout  # the first failure

    exchanges, tests, truncated = read_capture(output)
    assert not truncated
    assert len(exchanges) == 8
    assert {t.name: t.outcome for t in tests} == outcome
    assert {x.caller.name for x in exchanges} == {"shop", "tests"}
    assert {x.callee.name for x in exchanges} == {"shop", "inventory", "payments"}
    assert [x.status for x in exchanges] == [int(s) for s in statuses]
