"""How a caller or callee is shown, in every output: one rule, one place.

A caller known only by its address (source `peer`) shows as `?127.0.0.1`: unknown
stays visibly unknown, never mistaken for a service's name. An unnamed callee at an IP
address shows as `IP:PORT`: on loopback every service has the same IP. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from tapproxy.capture.model import Exchange, Party

__all__ = ["as_shown", "callee_name", "callee_with_port", "party_name"]


def party_name(p: Party) -> str:
    """The name to print for `p`: `?ADDRESS` for a caller known only by its address."""
    shown = p.source != "peer" or p.name.startswith("?")  # as_shown named it already
    return p.name if shown else f"?{p.name}"


def callee_name(callee: Party) -> str:
    """The name to print for a callee: `IP:PORT` for an unnamed one at an IP address."""
    if callee.source != "host" or not callee.address:
        return callee.name
    try:
        ipaddress.ip_address(callee.name.strip("[]"))
    except ValueError:
        return callee.name  # a host name says more than its address
    return callee.address


def callee_with_port(x: Exchange) -> Exchange:
    """An unnamed callee at an IP address shows as `IP:PORT`: on loopback every service
    has the same IP, so the bare address would merge them all into one."""
    name = callee_name(x.callee)
    if name == x.callee.name:
        return x
    return dataclasses.replace(x, callee=dataclasses.replace(x.callee, name=name))


def as_shown(x: Exchange) -> Exchange:
    """`x` with both parties named as printed, before an analysis whose sentences name
    them (`why`, the pytest section): callee as `IP:PORT`, address-only caller `?IP`."""
    x = callee_with_port(x)
    name = party_name(x.caller)
    if name != x.caller.name:
        x = dataclasses.replace(x, caller=dataclasses.replace(x.caller, name=name))
    return x
