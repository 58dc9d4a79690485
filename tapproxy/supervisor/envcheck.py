"""`tapproxy env --check`: run each HTTP client found on this machine with the exported
environment, through a recording proxy of the check's own, and say which ones it saw.

The check starts what it needs and leaves nothing behind: a loopback echo service (plain
and TLS, its certificate issued by the proxy's CA), a short-lived proxy with the same CA
on a free port, and each client (the small programs in `probes/`) with the variables
`tapproxy env` prints pointed at that proxy. A running `tapproxy record` is neither
needed nor touched: the answer is about the clients and the environment, the same for
any proxy the user starts later. Each client calls `/tapproxy-check/<client>` over http
and https; a call the client completed that the proxy did not record went around it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tapproxy.errors import ProxyError

__all__ = ["TOOLS", "Client", "EchoService", "Outcome", "Seen", "classify", "find_clients",
           "node_honours_env_proxy", "print_report", "run_check", "slug", "start_echo"]

PROBES = Path(__file__).with_name("probes")
TOOLS = ("curl", "wget", "python", "node", "java", "go")
RECORDED, BYPASSED, FAILED = "recorded", "bypassed", "failed"
FRONT = ("or front the service (tapproxy record --start 'NAME@PORT=COMMAND {port}', "
         "or --reverse NAME=URL@PORT for one started elsewhere), which needs nothing "
         "from any client")
_RUN_TIMEOUT = 120  # a JDK compiling the single-file probe on a busy machine
_PARALLEL = 3


@dataclass(frozen=True, slots=True)
class Client:
    """One HTTP client: run as `argv + urls` (or once per URL), with hints for failures."""

    name: str  # "python requests", "node fetch"
    tool: str  # one of TOOLS: what `--check TOOL` selects
    argv: tuple[str, ...]
    per_url: bool = False  # curl and wget take one URL per run here
    bypass_hint: str = ""
    trust_hint: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one client did with one URL, as the proxy saw it."""

    client: str
    scheme: str
    result: str  # RECORDED, BYPASSED or FAILED
    detail: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the proxy recorded for one request path."""

    caller: str
    caller_source: str


def node_honours_env_proxy(version: str) -> bool:
    """Node reads HTTP(S)_PROXY under NODE_USE_ENV_PROXY=1 from 22.21 and from 24.5."""
    m = re.match(r"v?(\d+)\.(\d+)", version)
    if m is None:
        return False
    v = (int(m[1]), int(m[2]))
    return (22, 21) <= v < (23, 0) or v >= (24, 5)


def find_clients(tools: Iterable[str] = TOOLS, env: dict[str, str] | None = None
                 ) -> tuple[list[Client], list[str]]:
    """The clients found on PATH among `tools`, and a line per tool that is not there."""
    env = dict(os.environ if env is None else env)
    path = env.get("PATH")
    clients: list[Client] = []
    notes: list[str] = []

    def which(cmd: str) -> str | None:
        return shutil.which(cmd, path=path)

    for tool in tools:
        if tool == "curl" and (exe := which("curl")):
            clients.append(Client("curl", tool, (exe,), per_url=True,
                                  trust_hint="curl reads CURL_CA_BUNDLE (exported)"))
        elif tool == "wget" and (exe := which("wget")):
            clients.append(Client("wget", tool, (exe,), per_url=True,
                                  trust_hint="wget reads its CA from WGETRC (exported) or "
                                             "--ca-certificate"))
        elif tool == "python" and (exe := which("python3") or which("python")):
            found = _importable(exe, ("requests", "httpx", "aiohttp"), env)
            probe = (exe, str(PROBES / "probe.py"))
            clients.append(Client("python urllib", tool, (*probe, "urllib")))
            if "requests" in found:
                clients.append(Client(
                    "python requests", tool, (*probe, "requests"),
                    trust_hint="requests ignores SSL_CERT_FILE; it reads REQUESTS_CA_BUNDLE "
                               "(exported) or verify=PATH"))
            if "httpx" in found:
                clients.append(Client("python httpx", tool, (*probe, "httpx")))
            if "aiohttp" in found:
                clients.append(Client(
                    "python aiohttp", tool, (*probe, "aiohttp"),
                    bypass_hint="aiohttp's ClientSession reads no proxy variable unless "
                                "created with trust_env=True"))
                clients.append(Client("python aiohttp trust_env", tool,
                                      (*probe, "aiohttp-trust-env")))
            missing = [m for m in ("requests", "httpx", "aiohttp") if m not in found]
            if missing:
                notes.append(f"{exe}: cannot import {', '.join(missing)}")
        elif tool == "node" and (exe := which("node")):
            version = _version([exe, "--version"], env)
            if node_honours_env_proxy(version):
                hint = f"Node {version} honours NODE_USE_ENV_PROXY=1: is it exported?"
            else:
                hint = (f"Node {version} reads no proxy variable; Node ≥ 22.21 or ≥ 24.5 "
                        "does with NODE_USE_ENV_PROXY=1 (exported)")
            for api in ("fetch", "http"):
                clients.append(Client(
                    f"node {api}", tool, (exe, str(PROBES / "probe.mjs"), api),
                    bypass_hint=hint,
                    trust_hint="Node reads NODE_EXTRA_CA_CERTS (exported) at start-up"))
        elif tool == "java" and (exe := which("java")):
            clients.append(Client(
                "java HttpClient", tool, (exe, str(PROBES / "Probe.java")),
                bypass_hint="the JVM reads the proxy from JAVA_TOOL_OPTIONS (exported); an "
                            "empty -Dhttp.nonProxyHosts= is what lets loopback through",
                trust_hint="the JVM reads the truststore from JAVA_TOOL_OPTIONS "
                           "(-Djavax.net.ssl.trustStore)"))
        elif tool == "go" and (exe := which("go")):
            clients.append(Client(
                "go net/http", tool, (exe, "run", str(PROBES / "probe.go")),
                bypass_hint="Go's http.ProxyFromEnvironment never proxies localhost or "
                            "loopback addresses, whatever NO_PROXY says; set Transport.Proxy "
                            "in code"))
        elif tool in TOOLS:
            notes.append(f"{tool}: not found on PATH")
        else:
            raise ProxyError(f"unknown client {tool!r}: choose from {', '.join(TOOLS)}")
    return clients, notes


def _importable(python: str, modules: Sequence[str], env: dict[str, str]) -> set[str]:
    code = ("import importlib.util, sys\n"
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))")
    try:
        out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True,
                             timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(out.stdout.split())


def _version(argv: list[str], env: dict[str, str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "?"


def slug(client: str) -> str:
    """The path segment that identifies a client's calls: `python aiohttp` → `python-aiohttp`."""
    return re.sub(r"[^a-z0-9]+", "-", client.lower()).strip("-")


def classify(client: Client, urls: dict[str, str], lines: Sequence[str],
             seen: dict[str, Seen], failure: str = "") -> list[Outcome]:
    """Pure: the outcome per scheme from the client's output lines and the proxy's records.

    `urls` maps scheme → URL; `seen` maps a recorded request path → what was recorded;
    `failure` is why the client produced no answer for a URL (crash, timeout).
    """
    answers: dict[str, str] = {}
    for line in lines:
        url, _, rest = line.partition(" ")
        answers[url] = rest.strip()
    outcomes = []
    for scheme, url in urls.items():
        path = "/" + url.split("/", 3)[3]
        answer = answers.get(url)
        record = seen.get(path)
        if answer is None:
            outcomes.append(Outcome(client.name, scheme, FAILED, failure or "no answer"))
        elif answer.startswith("error:"):
            trust = scheme == "https" and _looks_like_trust(answer)
            hint = client.trust_hint if trust and client.trust_hint else ""
            if trust and not hint:
                hint = "the client does not trust the proxy's CA"
            outcomes.append(Outcome(client.name, scheme, FAILED, answer[6:].strip(), hint))
        elif record is not None:
            outcomes.append(Outcome(client.name, scheme, RECORDED,
                                    f"caller {record.caller} ({record.caller_source})"))
        else:
            hint = client.bypass_hint or "it read none of the proxy variables"
            outcomes.append(Outcome(client.name, scheme, BYPASSED,
                                    f"status {answer}, the proxy saw nothing",
                                    f"{hint}; {FRONT}"))
    return outcomes


def _looks_like_trust(error: str) -> bool:
    e = error.lower()
    return any(w in e for w in ("certif", "ssl", "tls", "pkix", "trust", "self-signed",
                                "self signed", "issuer"))


async def run_check(confdir: Path, clients: Sequence[Client], caller: str | None = "check",
                    env: dict[str, str] | None = None) -> list[Outcome]:
    """Run every client against a loopback echo through a proxy of its own."""
    from tapproxy.capture import Exchange, open_capture
    from tapproxy.proxy.certs import ca_cert_path, env_exports
    from tapproxy.proxy.runner import RecordingProxy
    from tapproxy.supervisor.options import Address, RecordOptions

    ca = ca_cert_path(confdir)
    base_env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="tapproxy-check-") as tmp:
        work = Path(tmp)
        echo = await start_echo(confdir, work)
        opts = RecordOptions(output=work / "check.tap", listen=Address("127.0.0.1", _free_port()),
                             control=None, confdir=confdir, upstream_ca=ca)
        proxy = RecordingProxy(opts)
        try:
            await proxy.start()
            run_env = {**base_env, **env_exports(opts.listen, confdir, caller)}
            gate = asyncio.Semaphore(_PARALLEL)

            async def one(client: Client):
                path = f"/tapproxy-check/{slug(client.name)}"
                urls = {"http": f"http://127.0.0.1:{echo.http_port}{path}",
                        "https": f"https://127.0.0.1:{echo.https_port}{path}"}
                async with gate:
                    lines, failure = await _run(client, list(urls.values()), run_env, work)
                return client, urls, lines, failure

            runs = await asyncio.gather(*(one(c) for c in clients))
        finally:
            await proxy.stop()
            await echo.runner.cleanup()
        with open_capture(opts.output) as reader:
            seen = {x.request.path: Seen(x.caller.name, x.caller.source)
                    for x in reader if isinstance(x, Exchange)}
    return [o for client, urls, lines, failure in runs
            for o in classify(client, urls, lines, seen, failure)]


async def _run(client: Client, urls: list[str], env: dict[str, str], work: Path
               ) -> tuple[list[str], str]:
    """The client's answer lines (`URL STATUS` / `URL error: …`) and why any are missing."""
    if client.per_url:
        lines = []
        for url in urls:
            lines.append(await _run_single(client, url, env, work))
        return lines, ""
    code, out, err = await _exec([*client.argv, *urls], env, work)
    lines = [ln for ln in out.splitlines() if ln.startswith(("http://", "https://"))]
    return lines, "" if len(lines) == len(urls) else _last_line(err) or f"exit code {code}"


async def _run_single(client: Client, url: str, env: dict[str, str], work: Path) -> str:
    if client.tool == "curl":
        argv = [*client.argv, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                "--max-time", "10", url]
    else:  # wget: -nv prints only errors and a one-line summary
        argv = [*client.argv, "-nv", "--tries=1", "--timeout=10", "-O", "/dev/null", url]
    code, out, err = await _exec(argv, env, work)
    if client.tool == "curl" and code == 0:
        return f"{url} {out.strip()}"
    if client.tool == "wget" and code == 0:
        return f"{url} 200"
    return f"{url} error: {_last_line(err) or f'exit code {code}'}"


async def _exec(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as e:
        return 127, "", f"cannot run {argv[0]}: {e.strerror}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "", f"no answer within {_RUN_TIMEOUT} s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith("Picked up JAVA_TOOL_OPTIONS")]
    return lines[-1] if lines else ""


@dataclass(frozen=True, slots=True)
class EchoService:
    """A loopback service answering 200 to anything, over http and https."""

    runner: web.AppRunner
    http_port: int
    https_port: int


async def start_echo(confdir: Path, work: Path) -> EchoService:
    """Start an EchoService; its certificate is issued by the proxy's CA in `confdir`."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="tapproxy check\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    ports = []
    for context in (None, _echo_tls(confdir, work)):
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    return EchoService(runner, *ports)


def _echo_tls(confdir: Path, work: Path) -> ssl.SSLContext:
    from tapproxy.proxy.certs import loopback_cert

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*loopback_cert(confdir, work))
    return context


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_report(outcomes: Sequence[Outcome], notes: Sequence[str], file=None) -> None:
    """One row per client and scheme, a hint under each that did not reach the proxy."""
    file = file or sys.stdout
    width = max((len(o.client) for o in outcomes), default=6) + 2
    for i, o in enumerate(outcomes):
        print(_fill(f"{o.client:<{width}}{o.scheme:<7}{o.result:<10}{o.detail}",
                    width + 17), file=file)
        last_of_client = i + 1 == len(outcomes) or outcomes[i + 1].client != o.client
        if last_of_client:
            hints = dict.fromkeys(x.hint for x in outcomes if x.client == o.client and x.hint)
            for hint in hints:
                print(_fill(f"{'':<{width}}→ {hint}", width + 2), file=file)
    for note in notes:
        print(_fill(f"skipped: {note}", 2), file=file)


def _fill(line: str, indent: int, width: int = 80) -> str:
    """`line` wrapped at `width` columns, what follows indented by `indent` (at most
    half the width); words (a command to copy) are never broken."""
    import textwrap

    return textwrap.fill(line, width, subsequent_indent=" " * min(indent, width // 2),
                         break_long_words=False, break_on_hyphens=False,
                         drop_whitespace=True, replace_whitespace=False)
