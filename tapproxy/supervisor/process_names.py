"""One process, one name, both ways: what a local process is called as caller and callee.

The lookup helper (processes.py) says which process is at the far end of a connection
and what it is (`ProcessNamer.lookup`'s facts). This decides its name, the same whether
it calls or answers, in this order:
1. a service tapproxy started (`--start`, `tapproxy_service`), or the test runner itself;
2. the proxy user that process calls with, or before it has called, the one its own
   `HTTP_PROXY=http://NAME:tap@…` names (a leaf that never calls is named so too);
3. a `--caller-process` rule;
4. its executable, made unique among services: a process that answers calls never
   shares its name with another process (`python3.12`, `python3.12#2`), while clients
   that never answer may share theirs (every `curl` run is `curl`).
Pure bookkeeping, no I/O: the facts come from the helper, the proxy users from requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ProcessName", "ProcessNames"]

_SOURCES = {"service": "service", "user": "proxy-user", "rule": "rule", "exe": "process"}
_MAX_PROCESSES = 10_000  # named processes remembered; beyond, the oldest clients go


@dataclass(frozen=True, slots=True)
class ProcessName:
    """A process's name and how it was found, with the process it stands for."""

    name: str
    source: str  # service | proxy-user | rule | process
    pid: int
    command: str


def _key(facts: Mapping) -> tuple[int, str]:
    return facts["pid"], facts["started"]


_MIXED = ""  # a process that called as several proxy users: none of them names it


class ProcessNames:
    """The names of the local processes seen so far (on the event loop: not thread-safe).

    `own_pid` is the proxy's own process. A service running inside it (an in-process
    test server) cannot be told apart from the proxy or the test calling it, so as a
    callee it stays unnamed (`callee` gives None); its proxy users name nothing either.
    """

    def __init__(self, own_pid: int | None = None) -> None:
        self._own_pid = own_pid
        self._users: dict[tuple[int, str], str] = {}  # process → the proxy user it calls as
        self._exe_name: dict[tuple[int, str], str] = {}  # process → its executable name
        self._holders: dict[str, set[tuple[int, str]]] = {}  # executable name → processes
        self._servers: set[tuple[int, str]] = set()  # processes seen answering calls
        self._reserved: set[str] = set()  # executable names a server holds, for good
        # Changes whenever a name given before may no longer be the one `caller` or
        # `callee` would give: who cached a name checks it is still current.
        self.version = 0

    def called_as(self, facts: Mapping, user: str) -> None:
        """The process of `facts` called through the proxy as `user` (its proxy user)."""
        key = _key(facts)
        known = self._users.get(key)
        if known in (user, _MIXED) or facts["pid"] == self._own_pid:
            return
        if len(self._users) >= _MAX_PROCESSES:
            self._users.clear()
        # A process calling as two users (a test client playing several callers) is
        # neither: it is named as if it had none.
        self._users[key] = user if known is None else _MIXED
        self.version += 1

    def caller(self, facts: Mapping) -> ProcessName:
        """The name of a process that calls (a client socket's owner)."""
        return self._name(facts, server=False)

    def callee(self, facts: Mapping) -> ProcessName | None:
        """The name of a process that answers (the owner of the socket we connected to);
        None for the proxy's own process."""
        if facts["pid"] == self._own_pid:
            return None
        return self._name(facts, server=True)

    def _name(self, facts: Mapping, server: bool) -> ProcessName:
        key = _key(facts)
        if facts.get("service"):
            name, how = facts["service"], "service"
        elif self._users.get(key):
            name, how = self._users[key], "user"
        elif facts.get("env_user") and key not in self._users:  # not seen as two users
            name, how = facts["env_user"], "user"
        elif facts.get("rule"):
            name, how = facts["rule"], "rule"
        else:
            name, how = self._executable(key, facts["exe"], server), "exe"
        return ProcessName(name, _SOURCES[how], facts["pid"], facts.get("command", ""))

    def _executable(self, key: tuple[int, str], exe: str, server: bool) -> str:
        name = self._exe_name.get(key)
        if name is None:
            # A new process: its executable's name, unless a server holds that name.
            name = exe if exe not in self._reserved else self._unused(exe)
            self._hold(key, name)
        if server and key not in self._servers:
            self.version += 1
            self._servers.add(key)
            if self._holders[name] != {key}:  # clients share it: the server gets its own
                self._holders[name].discard(key)
                name = self._unused(exe)
                self._hold(key, name)
            self._reserved.add(name)
        return name

    def _hold(self, key: tuple[int, str], name: str) -> None:
        if len(self._exe_name) >= _MAX_PROCESSES:
            self._forget_clients()
        self._exe_name[key] = name
        self._holders.setdefault(name, set()).add(key)
        self.version += 1

    def _forget_clients(self) -> None:
        for key in [k for k in self._exe_name if k not in self._servers]:
            self._holders[self._exe_name.pop(key)].discard(key)

    def _unused(self, exe: str) -> str:
        n = 2
        while f"{exe}#{n}" in self._reserved or self._holders.get(f"{exe}#{n}"):
            n += 1
        return f"{exe}#{n}"
