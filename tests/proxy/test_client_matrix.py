"""The client matrix: real clients of every language, each in a fresh shell with nothing but
`eval "$(tapproxy env)"`, calling a loopback service at http://127.0.0.1, http://localhost
and https://127.0.0.1.

Each row is a line of the README's table of clients: the test asserts the outcome the
table documents — recorded (and how the caller is named), or, for the clients that read
no proxy setting for loopback, bypassed — and `tapproxy env --check` must report that
same outcome. One proxy and one service serve the whole module; Go is compiled once per
session. A language is skipped only where its toolchain is not installed (scripts/setup
installs them all), and the skip says so; under CI=true that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tapproxy.proxy.runner import RecordingProxy
from tapproxy.supervisor.envcheck import PROBES, node_honours_env_proxy, slug, start_echo
from tapproxy.supervisor.options import Address, RecordOptions, ReverseSpec
from tests.conftest import ROOT, LoopThread, Proxy, free_port, missing_tool, run_cli

CALLER = "matrix"
FRONTED = "echo"  # the fronted service's name
RECORDED, BYPASSED = "recorded", "bypassed"


@dataclass(frozen=True)
class Row:
    client: str  # as `tapproxy env --check` names it
    tool: str  # the toolchain it needs (a key of `toolchains`)
    args: tuple[str, ...] = ()  # after the tool's command; the URLs follow
    outcome: str = RECORDED  # None: it depends on the tool's version (Node)
    caller_source: str = "proxy-auth"  # how a recorded call's caller is named


ROWS = [
    Row("curl", "curl"),
    Row("wget", "wget"),
    Row("python urllib", "python", (str(PROBES / "probe.py"), "urllib")),
    Row("python requests", "python", (str(PROBES / "probe.py"), "requests")),
    Row("python httpx", "python", (str(PROBES / "probe.py"), "httpx")),
    # ClientSession reads no proxy variable unless trust_env=True.
    Row("python aiohttp", "python", (str(PROBES / "probe.py"), "aiohttp"), BYPASSED),
    Row("python aiohttp trust_env", "python", (str(PROBES / "probe.py"), "aiohttp-trust-env")),
    # Node reads the proxy variables only from 22.21 / 24.5, and only with NODE_USE_ENV_PROXY.
    Row("node fetch", "node", (str(PROBES / "probe.mjs"), "fetch"), outcome=""),
    Row("node http", "node", (str(PROBES / "probe.mjs"), "http"), outcome=""),
    Row("node 24 fetch", "node24", (str(PROBES / "probe.mjs"), "fetch")),
    Row("node 24 http", "node24", (str(PROBES / "probe.mjs"), "http")),
    # JAVA_TOOL_OPTIONS carries the proxy and the truststore; the JDK's HttpClient sends no
    # proxy credentials (it answers a 407 only), so the caller is named by its process.
    # It sends no proxy credentials: named by the proxy user its own environment names.
    Row("java HttpClient", "java", (str(PROBES / "Probe.java"),), caller_source="proxy-user"),
    # http.ProxyFromEnvironment never proxies localhost or a loopback address.
    Row("go net/http", "go", (), BYPASSED),
]


def row_named(client: str) -> Row:
    return next(r for r in ROWS if r.client == client)


def _node24() -> Path | None:
    found = sorted((ROOT / ".tools/node24/node_modules").glob("node-linux-*/bin/node"))
    return found[0] if found else None


@pytest.fixture(scope="session")
def toolchains(tmp_path_factory) -> dict[str, tuple[str, ...] | str]:
    """Tool → the command that runs its client, or why it cannot run here."""
    setup = "not installed (scripts/setup installs it"
    tools: dict[str, tuple[str, ...] | str] = {"python": (sys.executable,)}
    for tool in ("curl", "wget", "node"):
        exe = shutil.which(tool)
        tools[tool] = (exe,) if exe else f"{tool} {setup} with apt)"
    node24 = _node24()
    tools["node24"] = (str(node24),) if node24 else f"Node 24 {setup} with npm)"
    java, javac = shutil.which("java"), shutil.which("javac")
    tools["java"] = (java,) if java and javac else f"a JDK {setup}: default-jdk-headless)"
    go = shutil.which("go")
    if go is None:
        tools["go"] = f"Go {setup}: golang-go)"
    else:  # compiled once per session, from the standard library only
        out = tmp_path_factory.mktemp("go")
        env = {**_base_env(), "GOCACHE": str(out / "cache"), "GOFLAGS": "-mod=mod",
               "GOPROXY": "off", "GOTOOLCHAIN": "local"}
        subprocess.run([go, "build", "-o", str(out / "probe"), str(PROBES / "probe.go")],
                       check=True, env=env, cwd=out, capture_output=True, timeout=300)
        tools["go"] = (str(out / "probe"),)
    return tools


def _base_env(**extra: str) -> dict[str, str]:
    """A fresh shell's environment: no inherited proxy, CA or JVM settings."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"),
            "LANG": "C.UTF-8", **extra}


@dataclass
class Matrix:
    proxy: Proxy
    http: str  # base URLs of the loopback service
    https: str
    exports: str  # what `tapproxy env` printed
    confdir: Path
    fronted: str  # a reverse listener in front of the service's http port


@pytest.fixture(scope="module")
def matrix(confdir, tmp_path_factory):
    """One proxy and one service (http and https, its certificate from the proxy's CA)."""
    work = tmp_path_factory.mktemp("matrix")
    lt = LoopThread()
    ca = confdir / "mitmproxy-ca-cert.pem"
    echo = lt.run(start_echo(confdir, work))
    front = ReverseSpec(FRONTED, f"http://127.0.0.1:{echo.http_port}",
                        Address("127.0.0.1", free_port()))
    opts = RecordOptions(output=work / "matrix.tap", listen=Address("127.0.0.1", free_port()),
                         reverse=(front,), control=None, confdir=confdir, upstream_ca=ca)
    handle = RecordingProxy(opts)
    lt.run(handle.start())
    out = run_cli("env", "--listen", str(opts.listen), "--caller", CALLER, "--confdir", confdir)
    assert (out.returncode, out.stderr) == (0, "")
    proxy = Proxy(opts, handle, lt)
    yield Matrix(proxy, f"http://127.0.0.1:{echo.http_port}",
                 f"https://127.0.0.1:{echo.https_port}", out.stdout, confdir,
                 f"http://{front.listen}")
    proxy.stop()
    lt.run(echo.runner.cleanup())
    lt.close()


def run_client(command: tuple[str, ...], urls: list[str], exports: str = "") -> dict[str, str]:
    """Run a client in a fresh shell after `eval` of the exports: URL → status or error."""
    script = 'eval "$1"; shift; exec "$@"'
    answers = {}
    if Path(command[0]).name in ("curl", "wget"):
        for url in urls:
            argv = ([*command, "-sS", "-o", "/dev/null", "-w", "%{http_code}", url]
                    if Path(command[0]).name == "curl"
                    else [*command, "-nv", "-O", "/dev/null", url])
            r = subprocess.run(["bash", "-c", script, "bash", exports, *argv],
                               capture_output=True, text=True, env=_base_env(), timeout=60)
            answers[url] = (r.stdout.strip() or "200") if r.returncode == 0 \
                else f"error: {r.stderr.strip()}"
        return answers
    r = subprocess.run(["bash", "-c", script, "bash", exports, *command, *urls],
                       capture_output=True, text=True, env=_base_env(), timeout=180)
    for line in r.stdout.splitlines():
        url, _, answer = line.partition(" ")
        answers[url] = answer
    assert set(answers) == set(urls), f"no answer for every URL: {r.stdout!r} {r.stderr!r}"
    return answers


def expected_outcome(row: Row, toolchains) -> str:
    if row.outcome:
        return row.outcome
    version = subprocess.run([*toolchains[row.tool], "--version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    return RECORDED if node_honours_env_proxy(version) else BYPASSED


def command_for(row: Row, toolchains) -> tuple[str, ...]:
    tool = toolchains[row.tool]
    if isinstance(tool, str):
        print(f"skipped {row.client}: {tool}")
        missing_tool(tool)  # scripts/setup installs every toolchain: fails under CI=true
    return (*tool, *row.args)


@pytest.mark.parametrize("row", ROWS, ids=[slug(r.client) for r in ROWS])
def test_client_with_only_the_env_exports(row: Row, matrix: Matrix, toolchains):
    command = command_for(row, toolchains)
    path = f"/matrix/{slug(row.client)}"
    urls = {f"{matrix.http}{path}/ip": ("http", "127.0.0.1"),
            f"{matrix.http.replace('127.0.0.1', 'localhost')}{path}/name": ("http", "localhost"),
            f"{matrix.https}{path}/tls": ("https", "127.0.0.1")}
    answers = run_client(command, list(urls), matrix.exports)

    # Whether the client went through the proxy or around it, it got the service's answer:
    # over https that means it trusted the proxy's CA (the service's certificate is from
    # the same CA, so a client going around it is not failed by TLS either).
    assert answers == {url: "200" for url in urls}
    seen = {(x.request.scheme, x.request.host): x for x in matrix.proxy.exchanges()
            if x.request.path.startswith(f"{path}/")}
    expected = expected_outcome(row, toolchains)
    if expected == BYPASSED:
        assert seen == {}, "documented as going around the proxy, but it was recorded"
        return
    assert set(seen) == set(urls.values())
    for x in seen.values():
        assert x.status == 200
        assert x.caller.source == row.caller_source
        if row.caller_source in ("proxy-auth", "proxy-user"):
            assert x.caller.name == CALLER


@pytest.mark.parametrize("row", ROWS, ids=[slug(r.client) for r in ROWS])
def test_client_of_a_fronted_service_with_no_settings_at_all(row: Row, matrix: Matrix,
                                                             toolchains):
    """Fronting needs nothing from the client: every one is recorded, even those that go
    around the proxy variables."""
    command = command_for(row, toolchains)
    path = f"/fronted/{slug(row.client)}"
    url = f"{matrix.fronted}{path}"
    assert run_client(command, [url]) == {url: "200"}
    [x] = [x for x in matrix.proxy.exchanges() if x.request.path == path]
    assert x.status == 200
    assert (x.callee.name, x.callee.source) == (FRONTED, "reverse")
    assert x.caller.source == "process"  # no settings at all: named by its process


def test_java_options_survive_a_confdir_with_a_space(matrix: Matrix, toolchains, tmp_path):
    """JAVA_TOOL_OPTIONS is split on blanks: the truststore path is quoted for the JVM."""
    command = command_for(row_named("java HttpClient"), toolchains)
    spaced = tmp_path / "conf dir"
    shutil.copytree(matrix.confdir, spaced)  # the same CA, the truststore not yet written
    for stale in spaced.glob("tapproxy-*"):
        stale.unlink()
    out = run_cli("env", "--listen", str(matrix.proxy.options.listen), "--confdir", spaced)
    assert out.returncode == 0, out.stderr
    url = f"{matrix.https}/matrix/spaced-java"
    assert run_client(command, [url], out.stdout) == {url: "200"}
    assert [x.request.path for x in matrix.proxy.exchanges()
            if x.request.path == "/matrix/spaced-java"] == ["/matrix/spaced-java"]


_CHECK_ROW = re.compile(r"^(?P<client>\S+(?: \S+)*)\s{2,}(?P<scheme>https?)\s+"
                        r"(?P<outcome>recorded|bypassed|failed)\b")


def run_check(confdir: Path, tmp_path: Path, *tools: str, path_first: str = ""):
    """`tapproxy env --check` as a user runs it: (client, scheme) → outcome, exit code."""
    path = os.pathsep.join(p for p in (path_first, str(Path(sys.executable).parent),
                                       os.environ["PATH"]) if p)
    env = _base_env(PATH=path, GOCACHE=str(tmp_path / "gocache"), GOPROXY="off",
                    GOTOOLCHAIN="local")
    out = run_cli("env", "--check", "--confdir", confdir, *tools, env=env, timeout=300)
    assert out.returncode in (0, 1), out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        if m := _CHECK_ROW.match(line):
            rows[(m["client"], m["scheme"])] = m["outcome"]
    return rows, out


def test_env_check_reports_what_the_matrix_asserts(matrix: Matrix, toolchains, tmp_path):
    rows, out = run_check(matrix.confdir, tmp_path)
    expected = {}
    for row in ROWS:
        if row.tool == "node24" or isinstance(toolchains[row.tool], str):
            continue
        for scheme in ("http", "https"):
            expected[(row.client, scheme)] = expected_outcome(row, toolchains)
    assert rows == expected, out.stdout
    # Something went around the proxy (aiohttp's default session at least): exit code 1,
    # and each such client gets a line saying what to do.
    assert out.returncode == 1
    # (The hint is wrapped at 80 columns under its arrow: read as words.)
    assert "→ aiohttp's ClientSession reads no proxy variable unless created with " \
           "trust_env=True" in " ".join(out.stdout.split())


def test_env_check_sees_node_24_through_the_proxy(matrix: Matrix, toolchains, tmp_path):
    node24 = command_for(row_named("node 24 fetch"), toolchains)[0]
    rows, out = run_check(matrix.confdir, tmp_path, "node", path_first=str(Path(node24).parent))
    assert rows == {(c, s): RECORDED for c in ("node fetch", "node http")
                    for s in ("http", "https")}, out.stdout
    assert out.returncode == 0
