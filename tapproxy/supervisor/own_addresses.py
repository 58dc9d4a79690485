"""The proxy's own addresses (control API, forward listener, OTLP receiver): never a target.

Forwarding a request to them would let anything that can use the proxy drive the control
API, or loop the proxy into itself until it runs out of file descriptors. Two guards:

- `OwnAddresses` compares *addresses*, not spellings: the request's host is read as the
  C library reads it when mitmproxy connects (`127.1`, `0x7f000001`, `2130706433`,
  `127.000.000.001` are all 127.0.0.1; `::ffff:127.0.0.1` is 127.0.0.1), and a listener on
  `0.0.0.0`/`::` is reached through every address of this machine. Names are not looked
  up (no DNS on the event loop): `localhost`, `*.localhost` and the host name are this
  machine, any other name is left to the second guard.
- `OwnConnections` remembers the local end of every upstream connection the proxy has
  open. A request that arrives *from* one of them is the proxy talking to itself, by
  whatever name it was sent (a DNS alias of loopback, a reverse listener pointed at its
  own port): it is answered at once, so a loop stops at its first hop. This puts nothing
  on the wire; a `Via`-style header would have to be added to every forwarded request,
  since the proxy cannot tell beforehand which target is itself, and services would see it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from tapproxy.supervisor.options import Address

__all__ = ["OwnAddresses", "OwnConnections", "ip_of"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _unmapped(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=1024)
def ip_of(host: str) -> IP | None:
    """The address an IP literal names, in any spelling the C library accepts, else None.

    `getaddrinfo` with AI_NUMERICHOST parses without a lookup, exactly as the connect that
    would follow does (inet_aton for IPv4: `127.1`, hex, octal, one 32-bit number).
    """
    h = host.strip("[]")
    if not h:
        return None
    try:
        infos = socket.getaddrinfo(h, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    try:
        return _unmapped(ipaddress.ip_address(infos[0][4][0].partition("%")[0]))
    except ValueError:
        return None


def _local_addresses() -> frozenset[IP]:
    """Every address of this machine's interfaces (where a 0.0.0.0/:: listener answers)."""
    import psutil

    found: set[IP] = set()
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = ip_of(a.address.partition("%")[0])
                if ip is not None:
                    found.add(ip)
    return frozenset(found)


class OwnAddresses:
    """Which of the proxy's own listeners a request target names, if any."""

    def __init__(self) -> None:
        self._listeners: list[tuple[str, Address]] = []
        self._hostname = socket.gethostname().lower()
        self._machine: frozenset[IP] | None = None  # interface addresses, read once

    def add(self, what: str, address: Address) -> None:
        self._listeners.append((what, address))

    def _is_machine(self, ip: IP) -> bool:
        if ip.is_loopback or ip.is_unspecified:  # connecting to 0.0.0.0 reaches loopback
            return True
        if self._machine is None:
            self._machine = _local_addresses()
        return ip in self._machine

    def _names_machine(self, host: str) -> bool:
        host = host.rstrip(".")
        return host in ("localhost", self._hostname) or host.endswith(".localhost")

    def _reaches(self, listener: str, target: str) -> bool:
        """A connection to `target` reaches a socket bound to `listener` (same port)."""
        lip = ip_of(listener) if listener else None
        wildcard = listener == "" or (lip is not None and lip.is_unspecified)
        if self._names_machine(target):
            return True  # loopback or this machine's own address: ours if the port is
        tip = ip_of(target)
        if tip is None:
            return False  # another name: OwnConnections catches it if it is us
        if wildcard:
            return self._is_machine(tip)
        if lip is None:  # a listener given by name (`localhost`): this machine
            return self._is_machine(tip)
        # 127.0.0.2 does not reach a socket bound to 127.0.0.1, but refusing it costs
        # nothing real; any loopback spelling of a loopback listener is refused.
        if tip == lip or (lip.is_loopback and (tip.is_loopback or tip.is_unspecified)):
            return True
        return tip.is_unspecified and self._is_machine(lip)

    def named_by(self, host: str, port: int) -> tuple[str, Address] | None:
        """(what, address) of the listener that `host:port` reaches, or None."""
        target = host.strip("[]").lower()
        for what, a in self._listeners:
            if a.port == port and self._reaches(a.host.strip("[]").lower(), target):
                return what, a
        return None


_KEYS: dict[tuple, tuple[IP, int] | None] = {}  # socket address → _key's answer


def _key(address: tuple | None) -> tuple[IP, int] | None:
    if not address:
        return None
    # Asked for every request while an upstream connection is open (came_from_us), of
    # the same few addresses: each parsed once (getaddrinfo, twice per request).
    try:
        return _KEYS[address]
    except KeyError:
        pass
    ip = ip_of(str(address[0]))
    key = (ip, int(address[1])) if ip is not None else None
    if len(_KEYS) >= 4096:  # bounded: client ports come and go
        _KEYS.clear()
    _KEYS[address] = key
    return key


class OwnConnections:
    """Both ends of the proxy's open upstream connections (mitmproxy addon).

    Both, not only the local one: Linux gives one local port to several connections to
    different destinations, so a client of ours may share one with an upstream socket.
    Bounded by the connections open at once; each is forgotten as it closes.
    """

    def __init__(self) -> None:
        self._ends: set[tuple[tuple[IP, int], tuple[IP, int]]] = set()

    @staticmethod
    def _pair(local: tuple | None, remote: tuple | None):
        a, b = _key(local), _key(remote)
        return (a, b) if a is not None and b is not None else None

    def server_connected(self, data) -> None:
        pair = self._pair(data.server.sockname, data.server.peername)
        if pair is not None:
            self._ends.add(pair)

    def server_disconnected(self, data) -> None:
        pair = self._pair(data.server.sockname, data.server.peername)
        if pair is not None:
            self._ends.discard(pair)

    def came_from_us(self, peer: tuple | None, sockname: tuple | None) -> bool:
        """The connection from `peer` to our `sockname` is one this proxy opened."""
        if not self._ends:
            return False
        pair = self._pair(peer, sockname)
        return pair is not None and pair in self._ends
