"""The event loop's side of naming local processes: one lookup per connection.

A client connection is looked up as it opens (who calls), a connection to a local server
as it is made (who answers, settled when the exchange is written); `ProcessNames` turns
what the helper found into one name per process, used both ways.

The lookups themselves (netlink and /proc, see processes.py) run in a helper process that
tapproxy starts beside itself and talks to over a pipe, one JSON line each way per
lookup: the loop only writes a line and later reads one, never waits on /proc, and no
lookup thread competes with it for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import tapproxy
from tapproxy.capture.model import Party
from tapproxy.supervisor.identity import address_of
from tapproxy.supervisor.options import ProcessRule
from tapproxy.supervisor.process_names import ProcessName, ProcessNames
from tapproxy.supervisor.processes import is_local

__all__ = ["CallerLookups"]

log = logging.getLogger(__name__)

_NOT_LOOKED_UP = object()


class LookupFailed(Exception):
    """The helper's lookup raised: a bug to report, not an unknown caller."""


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class CallerLookups:
    """One process lookup per local connection, kept while the connection lives.

    Keyed by mitmproxy's client and server connection objects (anything with `peername`,
    `sockname` and weakly referable). `start`, `pending`, `get`, `callee`, `called_as` and
    `close` are called on the event loop; `add_service` from any thread. The helper
    starts with the first of them.
    """

    def __init__(self, rules: tuple[ProcessRule, ...] = ()) -> None:
        self._rules = rules
        self.lookups = 0  # connections looked up (once each)
        self._lock = threading.Lock()  # guards _loop and _early (add_service's threads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[bytes] = []  # services named before the helper started
        self._helper: subprocess.Popen | None = None
        self._gone = False  # the helper could not start, or has exited
        self._unsent = bytearray()  # what the pipe did not take at once
        self._writer_waits = False  # _flush is registered for when the pipe has room
        self._partial = b""  # the start of an answer line not yet complete
        self._waiting: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._lookup_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._facts_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # The name each connection's far end was given, with the names' version then:
        # asked for every request of a keep-alive connection, named again only when
        # some process's name may have changed since.
        self._as_caller: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._as_callee: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.names = ProcessNames(own_pid=os.getpid())

    @property
    def helper_pid(self) -> int | None:
        return self._helper.pid if self._helper is not None else None

    # -- the helper ---------------------------------------------------------------------

    def open(self) -> None:
        """Start the helper (on the event loop; again is a no-op)."""
        if self._loop is not None:
            return
        loop = asyncio.get_running_loop()
        package_root = str(Path(tapproxy.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root,
                                                        env.get("PYTHONPATH")) if p)
        rules = json.dumps([[r.pattern, r.name] for r in self._rules])
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-m", "tapproxy.supervisor.processes", rules],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
            assert self._helper.stdin is not None and self._helper.stdout is not None
            os.set_blocking(self._helper.stdin.fileno(), False)
            os.set_blocking(self._helper.stdout.fileno(), False)
            loop.add_reader(self._helper.stdout.fileno(), self._readable)
        except OSError as e:
            log.warning("tapproxy: cannot start the caller lookup helper (%s): callers are "
                        "named by address", e)
            self._gone = True
        with self._lock:
            self._loop = loop
            early, self._early = self._early, []
        for line in early:
            self._send(line)

    def _send(self, line: bytes) -> None:
        if self._gone or self._helper is None:
            return
        queued = bool(self._unsent)  # then the writer callback is already waiting
        self._unsent += line
        if not queued:
            self._flush()

    def _flush(self) -> None:
        """Write what the pipe takes; the rest when it has room (the helper is behind)."""
        fd = self._helper.stdin.fileno()  # type: ignore[union-attr]
        try:
            n = os.write(fd, self._unsent)
        except BlockingIOError:
            n = 0
        except OSError:
            self._lost()
            return
        del self._unsent[:n]
        if self._unsent:
            self._loop.add_writer(fd, self._flush)  # type: ignore[union-attr]
        elif n and self._writer_waits:
            self._loop.remove_writer(fd)  # type: ignore[union-attr]
        self._writer_waits = bool(self._unsent)

    def _readable(self) -> None:
        try:
            data = os.read(self._helper.stdout.fileno(), 65536)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            ident, name, *error = json.loads(line)
            lookup = self._waiting.pop(ident, None)
            if lookup is None or lookup.done():
                continue
            if error:
                lookup.set_exception(LookupFailed(error[0]))
            else:
                lookup.set_result(name)

    def _lost(self) -> None:
        """The helper has gone: what it still owed stays unknown, and so do new callers."""
        if self._gone:
            return
        self._gone = True
        code = None
        if self._helper is not None:  # its pipe closed as it died: its exit follows at once
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._helper.wait(timeout=1)
        log.warning("tapproxy: the caller lookup helper exited (%s): callers are named by "
                    "address from now on", f"exit code {code}" if code is not None else
                    "its pipe closed")
        self._stop_helper()

    def _stop_helper(self) -> None:
        helper, self._helper = self._helper, None
        for lookup in self._waiting.values():
            if not lookup.done():
                lookup.set_result(None)
        self._waiting.clear()
        if helper is None:
            return
        assert helper.stdin is not None and helper.stdout is not None
        if self._loop is not None:
            with contextlib.suppress(Exception):  # the loop may be closing already
                self._loop.remove_reader(helper.stdout.fileno())
                self._loop.remove_writer(helper.stdin.fileno())
        for pipe in (helper.stdin, helper.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        try:  # our stdin closed is its EOF: it ends at once
            helper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()

    def close(self) -> None:
        self._gone = True
        self._stop_helper()

    # -- per connection -----------------------------------------------------------------

    def add_service(self, pid: int, name: str, descendants: bool = True) -> None:
        """A service tapproxy started: its process (and its children) are `name`."""
        line = json.dumps(["service", pid, name, descendants]).encode() + b"\n"
        with self._lock:
            loop = self._loop
            if loop is None:
                self._early.append(line)
                return
        if _on_loop(loop):
            self._send(line)
        else:
            loop.call_soon_threadsafe(self._send, line)

    def start(self, conn, server: bool = False) -> None:
        """Look up the process at the far end of `conn` if it is local: a client as its
        connection opens, or a `server` once we are connected to it."""
        if not is_local(conn.peername, conn.sockname):
            return
        self.open()
        if self._gone:
            return
        self.lookups += 1
        self._next_id += 1
        lookup = self._loop.create_future()  # type: ignore[union-attr]
        self._waiting[self._next_id] = lookup
        self._lookup_of[conn] = lookup
        self._as_caller.pop(conn, None)  # named before its lookup began: name it again
        self._as_callee.pop(conn, None)
        peer_host, peer_port = conn.peername[:2]
        host, port = conn.sockname[:2]
        self._send(json.dumps(["lookup", self._next_id, peer_host, peer_port,
                               host, port, server]).encode() + b"\n")

    def pending(self, conn) -> asyncio.Future | None:
        """The lookup for `conn` if it is still running, else None."""
        if not self._lookup_of:  # every lookup done and taken: the common case
            return None
        lookup = self._lookup_of.get(conn)
        return lookup if lookup is not None and not lookup.done() else None

    def _facts(self, conn) -> dict | asyncio.Future | None:
        facts = self._facts_of.get(conn, _NOT_LOOKED_UP)
        if facts is not _NOT_LOOKED_UP:
            return facts  # type: ignore[return-value]
        lookup = self._lookup_of.get(conn)
        if lookup is None or not lookup.done():
            return lookup
        facts = self._facts_of[conn] = self.result(lookup, conn)
        del self._lookup_of[conn]
        return facts

    def get(self, client) -> Party | asyncio.Future | None:
        """The caller if looked up (None: not local or not found), else the pending lookup."""
        known = self._as_caller.get(client)
        if known is not None and known[0] == self.names.version:
            return known[1]
        facts = self._facts(client)
        if isinstance(facts, asyncio.Future):
            return facts
        party = None if facts is None else _party(self.names.caller(facts), client.peername)
        self._as_caller[client] = (self.names.version, party)
        return party

    def callee(self, server) -> Party | asyncio.Future | None:
        """The server's process as a callee if looked up, else as `get`."""
        known = self._as_callee.get(server)
        if known is not None and known[0] == self.names.version:
            return known[1]
        facts = self._facts(server)
        if isinstance(facts, asyncio.Future):
            return facts
        name = None if facts is None else self.names.callee(facts)
        party = None if name is None else _party(name, server.peername)
        self._as_callee[server] = (self.names.version, party)
        return party

    def process(self, conn) -> tuple[int | None, str | None]:
        """(PID, command line) of `conn`'s far end if looked up, else (None, None)."""
        facts = self._facts(conn)
        if isinstance(facts, dict):
            return facts["pid"], facts["command"]
        return None, None

    def called_as(self, client, user: str) -> None:
        """`client`'s process calls as proxy user `user`: that is its name both ways."""
        facts = self._facts(client)
        if isinstance(facts, dict):
            self.names.called_as(facts, user)

    def result(self, lookup: asyncio.Future, conn) -> dict | None:
        """The finished `lookup`'s facts; a failed lookup is logged, not hidden."""
        if lookup.cancelled():
            return None
        e = lookup.exception()
        if e is not None:  # a bug, not an unknown process: say so, and keep recording
            log.warning("tapproxy: looking up the process behind %s failed: %s",
                        conn.peername, e)
            return None
        return lookup.result()


def _party(p: ProcessName, peer) -> Party:
    return Party(p.name, p.source, address_of(peer), p.pid, p.command)
