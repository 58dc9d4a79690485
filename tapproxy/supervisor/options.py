"""The recorder's configuration: declared once, parsed from CLI specs, passed down as values."""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tapproxy.errors import UsageError

__all__ = ["Address", "ListenerSpec", "ProcessRule", "RecordOptions", "ReverseSpec",
           "ServiceSpec", "check_caller_name", "check_listeners", "check_name",
           "parse_address", "parse_caller_process",
           "parse_host_patterns", "parse_listen", "parse_reverse", "parse_seconds",
           "parse_service", "parse_size"]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ReverseSpec:
    """A reverse-proxy listener at `listen` in front of the service `name` at `upstream`."""

    name: str
    upstream: str  # scheme://host:port
    listen: Address


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A forward-proxy listener whose every connection comes from the caller `name`."""

    name: str
    listen: Address


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """Requests to host[:port] go to the service `name` (port None: any port)."""

    name: str
    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class ProcessRule:
    """Callers whose command line (or executable name) matches the glob `pattern` are `name`."""

    pattern: str
    name: str


def check_name(name: str, flag: str) -> str:
    """`name` unless it holds a control or format character (UsageError naming `flag`).

    A name is printed as it is (banners, `[NAME]` before a service's output, reports): an
    ESC in it would repaint the terminal, a bidi override reorder the line.
    """
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        raise UsageError(f"bad {flag} name {name!r}: has a control character")
    return name


def check_caller_name(name: str, flag: str) -> str:
    """`name` if it can name a caller in proxy credentials (`http://NAME:tap@…`).

    It is percent-encoded there, and clients decode it before they send it, but Basic
    credentials end the user at the first ':', and clients disagree on the bytes of
    anything beyond ASCII (curl sends UTF-8, requests Latin-1): printable ASCII only.
    """
    if not name or any(not " " <= c <= "~" for c in name) or ":" in name:
        raise UsageError(f"bad {flag} {name!r}: use printable ASCII without ':'")
    return name


def parse_caller_process(spec: str) -> ProcessRule:
    """`PATTERN=NAME`, e.g. `*orders.jar*=orders` (the last `=` separates them)."""
    pattern, sep, name = spec.rpartition("=")
    if not sep or not pattern.strip() or not name.strip():
        raise UsageError(f"bad --process-name {spec!r}: expected PATTERN=NAME, "
                         "e.g. '*orders.jar*=orders'")
    check_name(name.strip(), "--caller-process")
    return ProcessRule(pattern.strip(), name.strip())


@dataclass(frozen=True, slots=True)
class RecordOptions:
    output: Path
    listen: Address = Address("127.0.0.1", 8080)
    listeners: tuple[ListenerSpec, ...] = ()  # named forward listeners, beside `listen`
    reverse: tuple[ReverseSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    control: Address | None = Address("127.0.0.1", 8081)
    redact: bool = True
    redact_names: tuple[str, ...] = ()  # masked as header, query/form field and JSON key
    redact_headers: tuple[str, ...] = ()
    redact_json: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()  # [SERVICE:]/path/{param} templates naming routes
    confdir: Path = field(default_factory=lambda: Path("~/.mitmproxy").expanduser())
    upstream_ca: Path | None = None  # extra CA bundle to trust for upstream TLS
    insecure: bool = False  # do not verify upstream certificates
    idle_timeout: int = 600  # mitmproxy's tcp_timeout: an idle connection is closed after it
    otlp: str | None = None  # export synthesized spans live to this OTLP/HTTP endpoint
    inject_traceparent: bool = False  # give requests without trace context one
    otlp_receive: Address | None = None  # accept OTLP/HTTP spans from instrumented services
    queue_size: int = 4096
    max_body: int = 1 << 20  # bodies longer stream through; the record keeps this much
    # mitmproxy's own options: matching hosts are relayed unparsed (recorded as tunnels).
    allow_hosts: tuple[str, ...] = ()
    ignore_hosts: tuple[str, ...] = ()
    process_callers: bool = True  # name a local caller by the process owning its socket
    caller_processes: tuple[ProcessRule, ...] = ()  # command-line glob → caller name
    workers: int = 1  # recording processes behind the same listeners (supervisor.workers)


def parse_address(spec: str, what: str = "address", default_host: str = "127.0.0.1") -> Address:
    """`HOST:PORT`, `[V6]:PORT` or `PORT` → Address (UsageError naming `what` if malformed)."""
    spec = spec.strip()
    host, port_s = default_host, spec
    if spec.startswith("["):
        h, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"bad {what} {spec!r}: expected [IPv6]:PORT")
        host, port_s = h, rest[1:]
    elif ":" in spec:
        host, _, port_s = spec.rpartition(":")
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise UsageError(f"bad {what} {spec!r}: port must be a number from 0 to 65535")
    if not host:
        raise UsageError(f"bad {what} {spec!r}: empty host")
    return Address(host, int(port_s))


def _split_name(spec: str, flag: str, form: str) -> tuple[str, str]:
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise UsageError(f"bad {flag} {spec!r}: expected {form}")
    return check_name(name.strip(), flag), rest.strip()


def parse_reverse(spec: str) -> ReverseSpec:
    """`NAME=URL@[HOST:]PORT`, e.g. `orders=http://127.0.0.1:5001@9001`."""
    form = "NAME=URL@[HOST:]PORT, e.g. orders=http://127.0.0.1:5001@9001"
    name, rest = _split_name(spec, "--reverse", form)
    url, sep, listen = rest.rpartition("@")
    if not sep:
        raise UsageError(f"bad --reverse {spec!r}: missing @PORT, expected {form}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"bad --reverse {spec!r}: {url!r} is not an http(s):// URL")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"bad --reverse {spec!r}: {url!r} has a bad port") from None
    port = port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return ReverseSpec(name, f"{parts.scheme}://{host}:{port}",
                       parse_address(listen, "--reverse listen port"))


def parse_listen(specs: list[str] | tuple[str, ...]) -> tuple[Address, tuple[ListenerSpec, ...]]:
    """`--listen` values → (the unnamed listener, the named ones).

    `[HOST:]PORT` is the unnamed forward listener (at most one; 127.0.0.1:8080 if none),
    `NAME=[HOST:]PORT` a listener whose callers are all named NAME.
    """
    unnamed: list[Address] = []
    named: list[ListenerSpec] = []
    for spec in specs:
        if "=" in spec:
            name, where = _split_name(spec, "--listen", "NAME=[HOST:]PORT, e.g. browser=8082")
            named.append(ListenerSpec(name, parse_address(where, "--listen address")))
        else:
            unnamed.append(parse_address(spec, "--listen"))
    if len(unnamed) > 1:
        raise UsageError("--listen: only one listener can be unnamed; name the others "
                         "NAME=[HOST:]PORT")
    return (unnamed[0] if unnamed else Address("127.0.0.1", 8080)), tuple(named)


def parse_host_patterns(patterns: list[str] | tuple[str, ...], flag: str) -> tuple[str, ...]:
    """Regular expressions for mitmproxy's allow_hosts/ignore_hosts (UsageError if invalid)."""
    for p in patterns:
        if not p:  # it matches every host: `--ignore-hosts ''` would parse nothing at all
            raise UsageError(f"bad {flag} '': an empty pattern matches every host")
        try:
            re.compile(p)
        except re.error as e:
            raise UsageError(f"bad {flag} {p!r}: not a regular expression ({e})") from None
    return tuple(patterns)


def parse_service(spec: str) -> ServiceSpec:
    """`NAME=HOST[:PORT]`, e.g. `inventory=127.0.0.1:5002` or `inventory=inventory`."""
    name, target = _split_name(spec, "--service", "NAME=HOST[:PORT], e.g. inventory=127.0.0.1:5002")
    if target.startswith("[") or target.count(":") == 1:
        a = parse_address(target, "--service address")
        return ServiceSpec(name, a.host, a.port)
    try:  # a bare IPv6 address has colons but no port
        ipaddress.IPv6Address(target)
    except ValueError:
        if ":" in target:
            raise UsageError(f"bad --service {spec!r}: use [IPv6]:PORT for IPv6") from None
    return ServiceSpec(name, target, None)


def parse_seconds(value: float, flag: str) -> float:
    """`value` if it is a number of seconds above 0 (nan would never end a wait)."""
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"bad {flag} {value:g}: expected a number of seconds above 0")
    return value


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
          "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_size(spec: str, what: str) -> int:
    """`1048576`, `512k`, `1m`, `2MiB` → bytes (binary units; UsageError naming `what`)."""
    s = spec.strip().lower()
    digits = s.rstrip("abgikmt ")
    unit = s[len(digits):].strip()
    if not digits.isdigit() or unit not in _UNITS:
        raise UsageError(f"bad {what} {spec!r}: expected a size such as 1048576, 512k or 1m")
    return int(digits) * _UNITS[unit]


_ANY_HOST = ("", "0.0.0.0", "::")


def _overlap(a: Address, b: Address) -> bool:
    """Whether binding both would collide (port 0 asks for a fresh port each time)."""
    return (a.port == b.port != 0
            and (a.host == b.host or a.host in _ANY_HOST or b.host in _ANY_HOST))


def check_listeners(opts: RecordOptions) -> None:
    """Raise UsageError naming two options that would listen on the same address."""
    listeners = [("--listen", opts.listen)]
    listeners += [(f"--listen {n.name}=…", n.listen) for n in opts.listeners]
    listeners += [(f"--reverse {r.name}=…", r.listen) for r in opts.reverse]
    if opts.control is not None:
        listeners.append(("--control", opts.control))
    if opts.otlp_receive is not None:
        listeners.append(("--otlp-receive", opts.otlp_receive))
    for i, (what, address) in enumerate(listeners):
        for other, other_address in listeners[:i]:
            if _overlap(address, other_address):
                raise UsageError(f"{other} and {what} both listen on {address}: "
                                 "give each its own port")
