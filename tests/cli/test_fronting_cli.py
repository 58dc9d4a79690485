"""`tapproxy record --start`: a service started on a private port, fronted on its own.

Real processes throughout: the service is tests/fronted_service.py (aiohttp) started by
the real `tapproxy record`, its callers are curl and a Python client run with no proxy
settings at all, calling the port the service is known by.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tapproxy.capture import Exchange, open_capture
from tests.conftest import ROOT, TAPPROXY, free_port, run_cli, wait_for

PYTHON = os.path.basename(os.path.realpath(sys.executable))  # e.g. python3.12
SERVICE = [sys.executable, str(ROOT / "tests" / "fronted_service.py"), "{port}"]


def clean_env() -> dict[str, str]:
    """No proxy variables at all: the client knows nothing of tapproxy."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


def curl(url: str) -> str:
    out = subprocess.run(["curl", "-q", "-sS", "--fail", url], capture_output=True,
                         text=True, env=clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def python_client(url: str) -> str:
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                         env=clean_env(), timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not alive either.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


@dataclass
class Recording:
    proc: subprocess.Popen
    output: Path
    stderr_path: Path
    banner: list[str] = field(default_factory=list)

    def stop(self) -> tuple[int, list[str], str]:
        self.proc.send_signal(signal.SIGINT)
        rest = self.proc.stdout.read()
        code = self.proc.wait(timeout=30)
        return code, self.banner + rest.splitlines(), self.stderr_path.read_text()

    def exchanges(self) -> list[Exchange]:
        with open_capture(self.output) as reader:
            return [r for r in reader if isinstance(r, Exchange)]


@pytest.fixture(scope="module")
def confdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mitmconf")


@pytest.fixture
def record(tmp_path: Path, confdir: Path):
    started: list[Recording] = []

    def start(*extra: str) -> Recording:
        n = len(started)
        output, err = tmp_path / f"rec{n}.tap", tmp_path / f"rec{n}.stderr"
        args = ["record", "-o", output, "--listen", f"127.0.0.1:{free_port()}",
                "--control", "off", "--confdir", confdir, *extra]
        with open(err, "w") as stderr:
            proc = subprocess.Popen([*TAPPROXY, *map(str, args)], stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, cwd=ROOT)
        rec = Recording(proc, output, err)
        started.append(rec)
        for line in proc.stdout:
            rec.banner.append(line.rstrip("\n"))
            if line.startswith("export HTTPS_PROXY="):
                return rec
        raise AssertionError(f"tapproxy record exited with {proc.wait()}:\n{err.read_text()}")

    yield start
    for rec in started:
        if rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()
        rec.proc.stdout.close()


def start_spec(name: str, port: int, argv: list[str]) -> str:
    return f"{name}@{port}=" + " ".join(argv)


def test_a_fronted_service_is_recorded_for_clients_that_know_no_proxy(record, services):
    dep = services.start("dep", _dep_app())
    port = free_port()
    rec = record("--start", start_spec("hello", port, SERVICE),
                 "--service", f"dep=127.0.0.1:{dep.port}")
    [started] = [line for line in rec.banner if line.startswith("# hello started")]
    pid = int(started.split("(pid ")[1].split(")")[0])
    private = int(started.split("private port ")[1].split(",")[0])
    assert started.endswith(f"fronted at 127.0.0.1:{port}")
    assert f"[hello] listening on {private}" in rec.banner  # its output passes through

    assert f'"pid": {pid}' in curl(f"http://127.0.0.1:{port}/by-curl")
    assert f'"pid": {pid}' in python_client(f"http://localhost:{port}/by-python")
    # The service's own outgoing call gets the proxy environment, and so its name.
    assert curl(f"http://127.0.0.1:{port}/call?url=http://127.0.0.1:{dep.port}/stock") == (
        '{"dep": "/stock"}')

    code, _, err = rec.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert f"[hello] calling http://127.0.0.1:{dep.port}/stock" in err.splitlines()
    assert not alive(pid), "the service outlived the recording"
    rows = [(x.caller.name, x.caller.source, x.callee.name, x.callee.source, x.request.path,
             x.status) for x in rec.exchanges()]
    # Callers with no proxy settings are named after their process.
    assert sorted(rows, key=lambda r: r[4]) == sorted([
        ("curl", "process", "hello", "reverse", "/by-curl", 200),
        (PYTHON, "process", "hello", "reverse", "/by-python", 200),
        ("curl", "process", "hello", "reverse",
         f"/call?url=http://127.0.0.1:{dep.port}/stock", 200),
        ("hello", "proxy-auth", "dep", "service-map", "/stock", 200),
    ], key=lambda r: r[4])


def _dep_app() -> web.Application:
    async def any_path(request: web.Request) -> web.Response:
        return web.json_response({"dep": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", any_path)
    return app


def test_the_port_can_come_through_the_environment_and_callers_through_a_map(record):
    port = free_port()
    rec = record("--start", f"hello@127.0.0.1:{port}=PORT={{port}} {sys.executable} "
                 f"{ROOT / 'tests' / 'fronted_service.py'}",
                 "--caller-process", "*/by-rule=rulebook")
    assert '"path": "/env"' in curl(f"http://127.0.0.1:{port}/env")
    assert '"path": "/by-rule"' in curl(f"http://127.0.0.1:{port}/by-rule")
    code, _, err = rec.stop()
    assert code == 0, err
    assert [(x.caller.name, x.caller.source, x.callee.name, x.request.path)
            for x in rec.exchanges()] == [("curl", "process", "hello", "/env"),
                                          ("rulebook", "rule", "hello", "/by-rule")]


def test_process_names_can_be_turned_off(record):
    port = free_port()
    rec = record("--start", start_spec("hello", port, SERVICE), "--no-process-callers")
    curl(f"http://127.0.0.1:{port}/")
    code, _, err = rec.stop()
    assert code == 0, err
    [x] = rec.exchanges()
    assert (x.caller.name, x.caller.source) == ("127.0.0.1", "peer")


PIDFILE_SLEEPER = ("import os, sys, time; open(sys.argv[2], 'w').write(str(os.getpid())); "
                   "time.sleep(120)")


@pytest.mark.parametrize(("argv", "extra", "expected"), [
    pytest.param([sys.executable, "-c", "'import sys; sys.exit(3)'", "{port}"], [],
                 "service early exited with code 3 before listening on 127.0.0.1:",
                 id="exits-early"),
    pytest.param([sys.executable, "-c", f'"{PIDFILE_SLEEPER}"', "{port}", "{pidfile}"],
                 ["--start-timeout", "1"],
                 "service early did not listen on 127.0.0.1:", id="never-listens"),
    pytest.param(["/nonexistent/server", "{port}"], [],
                 "service early: cannot start '/nonexistent/server'", id="not-found"),
])
def test_a_service_that_does_not_come_up_is_one_line_and_exit_2(tmp_path, confdir, argv,
                                                                  extra, expected):
    pidfile = tmp_path / "pid"
    argv = [a.replace("{pidfile}", str(pidfile)) for a in argv]
    output = tmp_path / "x.tap"
    out = run_cli("record", "-o", output, "--listen", f"127.0.0.1:{free_port()}",
                  "--control", "off", "--confdir", confdir,
                  "--start", start_spec("early", free_port(), argv), *extra)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("tapproxy: error: " + expected), line
    assert "export" not in out.stdout
    assert not output.exists()
    if pidfile.exists():  # the one that never listened was stopped, not left behind
        wait_for(lambda: not alive(int(pidfile.read_text())), what="the service to end")


@pytest.mark.parametrize(("spec", "expected"), [
    ("hello=python x.py {port}", "--start 'hello=python x.py {port}': expected NAME@"),
    ("hello@5001=python x.py", "must say where to listen with {port}"),
    ("hello@5001=", "no command after '='"),
    ("hello@notaport=x {port}", "--start port"),
    ("he\x1b[31mllo@5001=x {port}", "--start name 'he\\x1b[31mllo': has a control character"),
    ("a:b@5001=x {port}", "--start name 'a:b': use printable ASCII without ':'"),
])
def test_a_bad_start_spec_is_one_line_and_exit_2(tmp_path, confdir, spec, expected):
    out = run_cli("record", "-o", tmp_path / "x.tap", "--control", "off",
                  "--confdir", confdir, "--start", spec)
    assert out.returncode == 2, out
    [line] = out.stderr.splitlines()
    assert line.startswith("tapproxy: error: bad ") and expected in line, line


@pytest.mark.parametrize(("extra", "expected"), [
    (["--start", "a@5001=x {port}", "--start", "a@5002=y {port}"],
     "--start: two services named 'a'; give each its own name"),
    (["--start-timeout", "0"], "bad --start-timeout 0: expected a number of seconds above 0"),
    (["--start-timeout", "-5"], "bad --start-timeout -5: expected a number of seconds"),
    (["--start-timeout", "nan"], "bad --start-timeout nan: expected a number of seconds"),
    (["--start-timeout", "inf"], "bad --start-timeout inf: expected a number of seconds"),
])
def test_a_bad_start_option_is_one_line_and_exit_2(tmp_path, confdir, extra, expected):
    output = tmp_path / "x.tap"
    out = run_cli("record", "-o", output, "--control", "off", "--confdir", confdir,
                  "--listen", f"127.0.0.1:{free_port()}", *extra, timeout=30)
    assert (out.returncode, out.stdout) == (2, ""), out
    [line] = out.stderr.splitlines()
    assert line.startswith(f"tapproxy: error: {expected}"), line
    assert not output.exists()


def test_a_busy_public_port_is_one_line_and_the_service_is_not_started(tmp_path, confdir):
    import socket

    pidfile = tmp_path / "pid"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_cli("record", "-o", tmp_path / "x.tap", "--control", "off",
                      "--listen", f"127.0.0.1:{free_port()}", "--confdir", confdir,
                      "--start", start_spec("hello", port, [
                          sys.executable, "-c", f'"{PIDFILE_SLEEPER}"', "{port}",
                          str(pidfile)]))
    assert out.returncode == 2, out
    [line] = out.stderr.splitlines()
    assert f"127.0.0.1:{port}" in line and "address already in use" in line, line
    assert not pidfile.exists()  # tapproxy binds its listeners before it starts services


def test_ctrl_c_while_a_service_starts_stops_it_and_keeps_the_old_capture(tmp_path, confdir):
    pidfile, output = tmp_path / "pid", tmp_path / "x.tap"
    output.write_bytes(b"the previous run's capture")
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([*TAPPROXY, "record", "-o", str(output), "--control", "off",
                                 "--listen", f"127.0.0.1:{free_port()}", "--confdir",
                                 str(confdir), "--start", start_spec("slow", free_port(), [
                                     sys.executable, "-c", f'"{PIDFILE_SLEEPER}"', "{port}",
                                     str(pidfile)])],
                                stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
    try:
        wait_for(pidfile.exists, timeout=30, what="the service to be started")
        wait_for(pidfile.read_text, timeout=10, what="the service's pid")
        proc.send_signal(signal.SIGINT)  # its start waits up to 30 s: Ctrl-C ends it now
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    [line] = err.read_text().splitlines()
    assert line == f"tapproxy: interrupted while starting; {output} was not written"
    wait_for(lambda: not alive(int(pidfile.read_text())), what="the service to end")
    assert output.read_bytes() == b"the previous run's capture"
