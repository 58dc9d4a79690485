"""Fronting: start a service on a private port so tapproxy can listen on the one its
callers already use, and no client needs any proxy setting.

The service's command line and environment name the port with `{port}`; tapproxy picks
a free private port, starts the service with it (and with the proxy environment, so its
own outgoing calls are recorded under its name), waits until it accepts connections, and
puts a reverse listener on the public port in front of it. Synchronous on purpose: the
CLI runs it in a thread, a pytest fixture can call it directly.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TextIO

from tapproxy.errors import ProxyError, UsageError
from tapproxy.supervisor.options import (
    Address,
    ReverseSpec,
    check_caller_name,
    check_name,
    parse_address,
)

__all__ = ["FrontSpec", "ServiceProcess", "parse_start", "parse_starts"]

PLACEHOLDER = "{port}"
TAIL_LINES = 10  # stderr lines a start-up error shows
_TAIL_WIDTH = 80
# Every process a service starts inherits this variable, with a value of its own: stop()
# finds by it what left the service's process group and lost its parent (`setsid -f`).
MARK_VARIABLE = "TAPPROXY_SERVICE_MARK"
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True, slots=True)
class FrontSpec:
    """The service `name`, started as `argv` (with `env`), fronted at `listen`."""

    name: str
    listen: Address
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def parse_start(spec: str) -> FrontSpec:
    """`NAME@[HOST:]PORT=COMMAND`, e.g. `orders@5001=PORT={port} node server.js`.

    COMMAND is split as a shell would split it; leading `VAR=value` words set the
    service's environment, as in a shell.
    """
    form = "NAME@[HOST:]PORT=COMMAND, e.g. 'orders@5001=node server.js --port {port}'"
    name, at, rest = spec.partition("@")
    address, eq, command = rest.partition("=")
    if not at or not eq or not name.strip() or not address.strip():
        raise UsageError(f"bad --start {spec!r}: expected {form}")
    # Its own calls carry the name in HTTP_PROXY's credentials.
    check_caller_name(check_name(name.strip(), "--start"), "--start name")
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"bad --start {spec!r}: {e}") from None
    env = []
    while words and _ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env.append((key, value))
    if not words:
        raise UsageError(f"bad --start {spec!r}: no command after '=', expected {form}")
    if not _names_port(words, (v for _, v in env)):
        raise UsageError(f"bad --start {spec!r}: the command must say where to listen with "
                         f"{PLACEHOLDER} (in an argument or a VAR={PLACEHOLDER})")
    return FrontSpec(name.strip(), parse_address(address, "--start port"), tuple(words),
                     tuple(env))


def _shorten(line: str, width: int) -> str:
    # Control characters escaped: a service's output must not repaint the terminal.
    line = line.expandtabs(4).translate(_CONTROLS)
    return line if len(line) <= width else line[:width - 1] + "…"


_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f]}


def _names_port(argv: Iterable[str], env_values: Iterable[str]) -> bool:
    return any(PLACEHOLDER in w for w in argv) or any(PLACEHOLDER in v for v in env_values)


def parse_starts(specs: list[str] | tuple[str, ...]) -> list[FrontSpec]:
    """Every `--start` spec; UsageError if two name the same service (one process, one
    name: which one would a call from that name be?)."""
    fronts: list[FrontSpec] = []
    for spec in specs:
        front = parse_start(spec)
        if any(f.name == front.name for f in fronts):
            raise UsageError(f"--start: two services named {front.name!r}; give each "
                             "its own name")
        fronts.append(front)
    return fronts


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServiceProcess:
    """A service tapproxy starts on a private loopback port and stops when done.

        svc = ServiceProcess("orders", ["node", "server.js", "--port", "{port}"])
        svc.start(proxy_env)    # blocks until 127.0.0.1:svc.private_port accepts
        spec = svc.reverse(Address("127.0.0.1", 5001))
        ...
        svc.stop()              # SIGTERM to its process group, then SIGKILL
    """

    def __init__(self, name: str, argv: tuple[str, ...] | list[str], *,
                 env: Mapping[str, str] | None = None, private_port: int | None = None,
                 start_timeout: float = 30.0, stop_timeout: float = 5.0,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        if not _names_port(argv, (env or {}).values()):
            # Else it could only be waited for until start_timeout, then stopped.
            raise UsageError(f"service {name}: say where it listens with {PLACEHOLDER} "
                             "(in argv or env)")
        self.name = name
        self.private_port = private_port or free_loopback_port()
        port = str(self.private_port)
        self.argv = [a.replace(PLACEHOLDER, port) for a in argv]
        self.env = {k: v.replace(PLACEHOLDER, port) for k, v in (env or {}).items()}
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._out = stdout
        self._err = stderr
        self._proc: subprocess.Popen | None = None
        self._pumps: list[threading.Thread] = []
        self._stopping = False
        self._listening = False
        self._stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._mark = secrets.token_hex(8)

    @classmethod
    def from_spec(cls, spec: FrontSpec, **kwargs) -> ServiceProcess:
        return cls(spec.name, spec.argv, env=dict(spec.env), **kwargs)

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.private_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def reverse(self, listen: Address) -> ReverseSpec:
        """The reverse listener on `listen` that fronts this service."""
        return ReverseSpec(self.name, self.upstream, listen)

    def start(self, proxy_env: Mapping[str, str] | None = None,
              on_spawn: Callable[[int], None] | None = None,
              abort: threading.Event | None = None) -> None:
        """Start it and wait until its private port accepts; ProxyError in one line if not.

        `on_spawn(pid)` is called as soon as the process exists, before it listens. Once
        `abort` is set (Ctrl-C) the wait ends: the service is stopped, ProxyError raised.
        """
        env = {**os.environ, **(proxy_env or {}), **self.env, MARK_VARIABLE: self._mark}
        try:
            # A session of its own: a terminal's Ctrl-C reaches tapproxy only, and stop()
            # reaches the service's children too (npm → node, a shell → its command).
            self._proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          start_new_session=True)
        except OSError as e:
            raise ProxyError(f"service {self.name}: cannot start {self.argv[0]!r}: "
                             f"{e.strerror or e}") from None
        if on_spawn is not None:
            on_spawn(self._proc.pid)
        self._pumps = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, self._out, False),
                             name=f"tapproxy-{self.name}-stdout", daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, self._err, True),
                             name=f"tapproxy-{self.name}-stderr", daemon=True),
        ]
        for t in self._pumps:
            t.start()
        deadline = time.monotonic() + self.start_timeout
        while not (_accepts("127.0.0.1", self.private_port) and self._listener_is_ours()):
            if abort is not None and abort.is_set():
                self.stop()
                raise ProxyError(f"service {self.name}: start interrupted")
            code = self._proc.poll()
            if code is not None:
                self._join_pumps()
                raise ProxyError(f"service {self.name} exited with code {code} before "
                                 f"listening on 127.0.0.1:{self.private_port} (its port "
                                 f"{{port}}){self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProxyError(f"service {self.name} did not listen on "
                                 f"127.0.0.1:{self.private_port} within "
                                 f"{self.start_timeout:g} s: does its command pass {{port}} "
                                 f"as the port to listen on?{self._tail()}")
            time.sleep(0.05)
        self._listening = True

    def _listener_is_ours(self) -> bool:
        """Whether the process listening on the private port is this service (or one it
        started), not another that took the same free port: then this one cannot listen
        there and is waited for until it exits, with its error (Linux; elsewhere, yes)."""
        import psutil

        from tapproxy.supervisor.processes import SUPPORTED, listener_owner

        if not SUPPORTED or self._proc is None:
            return True
        owner = listener_owner(("127.0.0.1", self.private_port))
        if owner is None:  # not found here (another user's, a namespace): cannot tell
            return True
        try:
            ours = {self._proc.pid, *(c.pid for c in psutil.Process(self._proc.pid)
                                      .children(recursive=True))}
        except psutil.Error:
            return False  # it has gone: the wait ends with its exit code
        return owner in ours

    def _tail(self) -> str:
        """Its last stderr lines for a start-up error, each within 80 columns, when they
        went to a sink (the pytest plugin's capture); passed through, they are just above."""
        if self._err is None or not self._stderr_tail:
            return ""
        lines = [_shorten(line, _TAIL_WIDTH - 2) for line in self._stderr_tail]
        return "; its last stderr lines:\n" + "\n".join(f"  {line}" for line in lines)

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it exits of its own accord and its output is passed on; exit code."""
        assert self._proc is not None, "not started"
        code = self._proc.wait(timeout)
        self._join_pumps()
        return code

    def stop(self) -> int | None:
        """SIGTERM its process tree, SIGKILL what is left after `stop_timeout`; exit code.

        The tree is its process group, and whatever it started that left the group
        (`setsid`): its descendants, looked up before the signal orphans them, and any
        process still carrying its mark.
        """
        proc = self._proc
        if proc is None:
            return None
        self._stopping = True
        if proc.poll() is None:
            outside = self._outside_group()
            self._signal(signal.SIGTERM, outside)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL, outside)
                proc.wait()
        else:
            outside = []
        # What outlived its parent, or was started while it stopped.
        self._signal(signal.SIGKILL, [*outside, *self._outside_group()])
        self._join_pumps()
        return proc.returncode

    def _outside_group(self) -> list:
        """The service's processes in other process groups (psutil.Process each)."""
        import psutil

        assert self._proc is not None
        found: dict[int, psutil.Process] = {}
        if self._proc.poll() is None:  # once reaped, its pid may name another process
            with contextlib.suppress(psutil.Error):
                found = {p.pid: p
                         for p in psutil.Process(self._proc.pid).children(recursive=True)}
        for p in psutil.process_iter():
            if p.pid not in found and p.pid != self._proc.pid:
                with contextlib.suppress(psutil.Error):
                    if p.environ().get(MARK_VARIABLE) == self._mark:
                        found[p.pid] = p
        outside = []
        for p in found.values():
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(p.pid) != self._proc.pid:
                    outside.append(p)
        return outside

    def _signal(self, sig: int, outside: list) -> None:
        import psutil

        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)
        for p in outside:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)  # psutil: not if its pid now names another process

    def _join_pumps(self) -> None:
        for t in self._pumps:
            t.join(2)

    def _pump(self, pipe, sink: TextIO | None, is_err: bool) -> None:
        """Pass the service's output through, each line prefixed with its name."""
        prefix = f"[{self.name}] "
        for raw in iter(pipe.readline, b""):
            out = sink or (sys.stderr if is_err else sys.stdout)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if is_err and not self._listening:
                self._stderr_tail.append(line)
            out.write(prefix + line + "\n")
            out.flush()
        pipe.close()
        if is_err and self._listening and not self._stopping and self._proc is not None:
            code = self._proc.wait()
            if not self._stopping:  # it ended while tapproxy was still recording
                out = sink or sys.stderr
                out.write(f"{prefix}exited with code {code}\n")
                out.flush()
