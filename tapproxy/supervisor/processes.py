"""Finding the local process at the other end of a connection (Linux): who calls, who
answers.

When the client is on this machine, the kernel knows which socket is the other end of a
connection tapproxy accepted, and /proc knows which process holds that socket; the same
holds for a server on this machine that tapproxy connected to (the socket it accepted
our connection on). Measured
here (benchmarks/caller_lookup.py): the socket's inode over netlink sock_diag, the way
`ss` asks, costs ~10 µs, where reading /proc/net/tcp costs ~2 ms of CPU once a few
thousand sockets are in TIME_WAIT; the owner is then found by reading fd links, first
of the processes that owned the last connections (through the fd each used last), then
of every process, newest first. psutil's `net_connections()` reads every socket and
every fd of every process on each call (~33 ms of CPU here), so it is not used.

Everything here blocks on /proc and netlink, and each of those system calls would hand
Python's GIL back and forth with mitmproxy's event loop if run on a thread of its process
(measured: ~11 context switches and +460 µs of the loop's CPU per connection). So it runs
in a helper process, `python -m tapproxy.supervisor.processes RULES`, which answers lookups
read from stdin (`serve`); `caller_lookups.CallerLookups` is the event loop's side.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import time
from fnmatch import fnmatchcase
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from tapproxy.supervisor.options import ProcessRule

__all__ = ["SUPPORTED", "ProcessNamer", "is_local", "is_loopback", "listener_owner",
           "same_process", "serve",
           "socket_owner"]

SUPPORTED = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")

_NETLINK_INET_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NOCOOKIE = 0xFFFFFFFF
_RECENT = 8  # owners remembered: a client opening connection after connection is found first
_COMMAND_KEPT = 200  # characters of a command line kept in a record


class _Netlink:
    socket: socket.socket | None = None  # the helper's sock_diag socket, kept open


_netlink = _Netlink()


def _diag_inode(family: int, local: tuple, remote: tuple) -> int | None:
    """Inode of the TCP socket whose own end is `local` and peer `remote`, via sock_diag."""
    src = socket.inet_pton(family, local[0]).ljust(16, b"\0")
    dst = socket.inet_pton(family, remote[0]).ljust(16, b"\0")
    # struct inet_diag_req_v2 with its inet_diag_sockid (linux/inet_diag.h): one socket,
    # found by its four-tuple, not a dump of them all.
    req = (struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
           + struct.pack("!HH", local[1], remote[1]) + src + dst
           + struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE))
    msg = struct.pack("=LHHLL", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req
    s = _netlink.socket
    if s is None:
        s = _netlink.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                            _NETLINK_INET_DIAG)
        s.settimeout(1)
    try:
        s.send(msg)
        data = s.recv(4096)
    except OSError:
        s.close()
        _netlink.socket = None
        raise
    if len(data) < 16 + 72 or struct.unpack_from("=H", data, 4)[0] == _NLMSG_ERROR:
        return None  # ENOENT: not a socket of this network namespace
    # struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue,
    # wqueue, uid, inode.
    return struct.unpack_from("=I", data, 16 + 68)[0] or None


def _socket_inode(peer: tuple, sockname: tuple) -> int | None:
    """Inode of the far end's socket of our connection between `peer` and `sockname`.

    None for a socket no process holds yet (a server's, not accepted yet). With port 0
    in `sockname`, the socket listening at `peer`: the kernel's lookup of a four-tuple
    that is not established falls back to the listener (inet_lookup).
    """
    try:
        a, b = ipaddress.ip_address(peer[0].split("%")[0]), ipaddress.ip_address(sockname[0])
    except ValueError:
        return None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped:  # a dual-stack listener
        a, b = a.ipv4_mapped, b.ipv4_mapped or b
    family = socket.AF_INET if a.version == 4 else socket.AF_INET6
    try:
        return _diag_inode(family, (str(a), peer[1]), (str(b), sockname[1]))
    except OSError:
        return None


def _fd_of(pid: int, link: str, hint: str | None = None) -> str | None:
    """The fd through which `pid` holds `link` (`socket:[inode]`), or None."""
    fd_dir = f"/proc/{pid}/fd"
    if hint is not None:
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{hint}") == link:
                return hint
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            if fd != hint and os.readlink(f"{fd_dir}/{fd}") == link:
                return fd
    return None


def socket_owner(inode: int, likely: dict[int, str | None] | None = None,
                 everywhere: bool = True) -> tuple[int, str] | None:
    """(PID, fd) of a process holding socket `inode`.

    `likely` (PID → the fd it last held a connection through) is tried first: a client
    that closes a connection and opens the next gets the same, lowest free, fd again, so
    one readlink usually settles it. Then every process, newest first: a client that has
    just started (curl) is found after few reads.
    """
    link = f"socket:[{inode}]"
    likely = likely or {}
    for pid, hint in likely.items():
        fd = _fd_of(pid, link, hint)
        if fd is not None:
            return pid, fd
    if not everywhere:
        return None
    for pid in sorted((int(p) for p in os.listdir("/proc") if p.isdigit()), reverse=True):
        if pid not in likely:
            fd = _fd_of(pid, link)
            if fd is not None:
                return pid, fd
    return None


def _stat(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (state first), [] if gone."""
    try:  # os.open/read/close: three syscalls, where open() makes six
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return []
    # The name in (…) may itself hold spaces and parentheses: fields follow the last ")".
    return stat[stat.rfind(b")") + 2:].split()


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _started(pid: int) -> bytes | None:
    """When the process started (clock ticks since boot): tells a reused PID apart."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


_PROXY_VARS = (b"HTTP_PROXY=", b"http_proxy=", b"HTTPS_PROXY=", b"https_proxy=")


def _environment_user(pid: int) -> str | None:
    """The user in the process's own proxy variables (`HTTP_PROXY=http://orders:tap@…`)
    when they point at this machine: the name it calls with, before it has called."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read(1 << 20)
    except OSError:
        return None
    for entry in env.split(b"\0"):
        if entry.startswith(_PROXY_VARS):
            url = urlsplit(entry.partition(b"=")[2].decode("utf-8", "replace"))
            if (url.hostname == "localhost" or is_loopback(url.hostname)) and url.username:
                return unquote(url.username)
    return None


def _executable(pid: int) -> str | None:
    """`node`, `java`, `curl`, `python3.12`: the executable's file name."""
    with contextlib.suppress(OSError):
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
        return f.read().strip() or None
    return None


def _process_group(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else None


class ProcessNamer:
    """Tells who a local socket's process is: the facts its name is chosen from.

    `lookup` answers a dict: `pid`, `started` (with the PID, one process over time),
    `exe` (`node`, `python3.12`), `command` (its command line, cut), `service` (a service
    tapproxy started: that process, or for `descendants` ones any process below it) and
    `rule` (the first matching `--process-name` rule), `env_user` (the proxy user its
    own HTTP_PROXY names, if it points at this machine). `process_names.ProcessNames`
    turns those facts into one name per process, on the event loop's side.
    """

    def __init__(self, rules: tuple[ProcessRule, ...] = ()) -> None:
        self._rules = rules
        self._services: dict[int, str] = {}  # the process and everything below it
        self._exact: dict[int, str] = {}  # that process only (a test runner's own)
        # PID → last fd, most recent first; clients and servers apart, since a miss
        # costs a listing of that process's fds (a client's first: wrk, then nginx).
        self._recent_of: dict[bool, dict[int, str | None]] = {False: {}, True: {}}
        self._listeners: dict[int, tuple[int, bytes | None]] = {}  # inode → (PID, start)
        # PID → (its start time, what it is, when that was last checked)
        self._facts: dict[int, tuple[bytes | None, dict | None, float]] = {}

    def add_service(self, pid: int, name: str, descendants: bool = True) -> None:
        """A service tapproxy started: `pid` (and with `descendants`, its children) is `name`."""
        (self._services if descendants else self._exact)[pid] = name
        self._facts.clear()  # facts found before may now belong to this service

    def lookup(self, peer: tuple | None, sockname: tuple | None,
               server: bool = False) -> dict | None:
        """The facts of the process at the far end of the connection between `peer` and
        `sockname` (a client calling us, or a `server` we called), None if not found."""
        if not SUPPORTED or not peer or not sockname:
            return None
        if server:
            return self._server(peer, sockname)
        inode = _socket_inode(peer, sockname)
        owner = socket_owner(inode, self._recent_of[False]) if inode is not None else None
        return None if owner is None else self._found(False, *owner)

    def _server(self, peer: tuple, sockname: tuple) -> dict | None:
        # One lookup per listening socket (its inode: a new process on a reused port is a
        # new socket), kept while the process that answered on it lives: a new connection
        # per request then costs one netlink request and a stat, not a search of fds.
        listener = _socket_inode(peer, (sockname[0], 0))
        known = self._listeners.get(listener) if listener is not None else None
        if known is not None and _started(known[0]) == known[1]:
            return self._cached_facts(known[0])
        recent = self._recent_of[True]
        # The connection's socket is looked for only among the recent owners: a server
        # that answers and closes at once (one request per connection) would leave a
        # search of every process finding nothing (measured: ~3.4 ms a time,
        # benchmarks/callee_lookup.py). Whoever listens on its address answered.
        inode = _socket_inode(peer, sockname)
        owner = socket_owner(inode, recent, everywhere=False) if inode is not None else None
        if owner is None and listener is not None:
            owner = socket_owner(listener, recent)
        if owner is None:
            return None
        facts = self._found(True, *owner)
        if facts is not None and listener is not None:
            if len(self._listeners) >= 1024:
                self._listeners.clear()
            self._listeners[listener] = (facts["pid"], facts["started"].encode())
        return facts

    def _found(self, server: bool, pid: int, fd: str) -> dict | None:
        """The facts of `pid`, which held the socket through `fd`: tried first next time."""
        recent = self._recent_of[server]
        recent.pop(pid, None)
        self._recent_of[server] = {pid: fd, **dict(list(recent.items())[:_RECENT - 1])}
        return self._cached_facts(pid)

    def _cached_facts(self, pid: int) -> dict | None:
        # A client opening connection after connection is one process: look it up once
        # (the ancestor walk is most of a lookup's cost), and within a second trust that
        # its PID has not been reused, which needs the PIDs of the whole system to wrap.
        now = time.monotonic()
        known = self._facts.get(pid)
        if known is not None and now - known[2] < 1.0:
            return known[1]
        started = _started(pid)
        facts = known[1] if known is not None and known[0] == started else self.facts_of(pid)
        if len(self._facts) >= 1024:
            self._facts.clear()
        self._facts[pid] = (started, facts, now)
        return facts

    def facts_of(self, pid: int) -> dict | None:
        """What names process `pid` (None if it has gone)."""
        started = _started(pid)
        if started is None:
            return None
        service = self._exact.get(pid)
        ancestor: int | None = pid
        for _ in range(64):  # a started service, or a process it started
            if service is not None or ancestor is None or ancestor <= 1:
                break
            service = self._services.get(ancestor)
            ancestor = _parent(ancestor)
        exe = _executable(pid)
        command = _command_line(pid)
        rule = None
        for r in self._rules:
            if fnmatchcase(command, r.pattern) or (exe and fnmatchcase(exe, r.pattern)):
                rule = r.name
                break
        return {"pid": pid, "started": started.decode(), "exe": exe or f"pid{pid}",
                "command": command[:_COMMAND_KEPT], "service": service, "rule": rule,
                "env_user": _environment_user(pid)}

    def name_of(self, pid: int) -> str | None:
        """The name a process gets from its own facts alone (service, rule, executable)."""
        facts = self.facts_of(pid)
        return None if facts is None else facts["service"] or facts["rule"] or facts["exe"]


def same_process(pid: int, started: float) -> bool:
    """Whether `pid` here is the process that started at `started` (psutil's
    create_time, seconds since the epoch): a pid from another host or PID namespace is
    another process here, or none, with another start time."""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.05
    except psutil.Error:
        return False


def listener_owner(address: tuple) -> int | None:
    """The PID of a process holding the socket that listens on `address`, if found."""
    inode = _socket_inode(address, (address[0], 0))
    owner = socket_owner(inode) if inode is not None else None
    return owner[0] if owner is not None else None


def is_loopback(host: str | None) -> bool:
    """A loopback IP address (`127.0.0.1`, `::1`, `::ffff:127.0.0.1`, `fe80…%lo` forms)."""
    try:
        a = ipaddress.ip_address((host or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(a, "ipv4_mapped", None)
    return a.is_loopback or bool(mapped and mapped.is_loopback)


def is_local(peer: tuple | None, sockname: tuple | None) -> bool:
    """Whether the client may be a process of this machine (loopback, or our own address)."""
    if not peer or not sockname:
        return False
    return peer[0].split("%")[0] == sockname[0] or is_loopback(peer[0])


def serve(rules: tuple[ProcessRule, ...], requests: BinaryIO, answers: BinaryIO) -> None:
    """The helper's loop: one JSON array per line in, one per line out, until EOF.

    In: `["lookup", ID, PEER_HOST, PEER_PORT, OUR_HOST, OUR_PORT, SERVER]` (the far end
    of our connection is the process looked up: a client, or a SERVER we connected to) or
    `["service", PID, NAME, DESCENDANTS]`. Out, for each lookup in turn: `[ID, FACTS or
    null]` (`ProcessNamer.lookup`), or `[ID, null, ERROR]` if the lookup itself failed (a
    bug to report, not an unknown).
    """
    namer = ProcessNamer(rules)
    for line in requests:
        msg = json.loads(line)
        if msg[0] == "service":
            namer.add_service(msg[1], msg[2], *msg[3:4])
            continue
        _, ident, peer_host, peer_port, host, port, *server = msg
        try:
            answer = [ident, namer.lookup((peer_host, peer_port), (host, port), *server)]
        except Exception as e:
            answer = [ident, None, repr(e)]
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group: tapproxy itself decides when this ends, by
    # closing our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rules = tuple(ProcessRule(pattern, name) for pattern, name in json.loads(argv[0]))
    try:
        serve(rules, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # tapproxy has gone; nothing is left to flush to (Python docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
