"""The capture records: plain, frozen, typed values with no I/O.

Every analysis reads these; only `capture.format` turns them into bytes and back.
Times are integers of nanoseconds since the Unix epoch (wall clock, as mitmproxy
stamps them), so phases subtract exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from tapproxy.capture.frozen import quick_init

__all__ = [
    "ErrorInfo",
    "Exchange",
    "GrpcMessage",
    "Headers",
    "Party",
    "Record",
    "Request",
    "ResourceSample",
    "Response",
    "ServiceLog",
    "SessionHeader",
    "SpanBatch",
    "TestCase",
    "Timing",
    "Tunnel",
    "WebSocketEnd",
    "WebSocketMessage",
    "is_grpc_content_type",
]

_SE = "surrogateescape"

#: The latest time a record can hold, ns since the epoch (int64, as OTLP carries it: 2262).
MAX_TIME = 2**63 - 1

#: Error kinds an exchange can fail with; `other` keeps mitmproxy's message.
ERROR_KINDS = ("refused", "reset", "timeout", "tls", "dns", "protocol", "client_closed", "other")

#: Why a connection was relayed without being parsed as HTTP (see Tunnel.reason).
TUNNEL_REASONS = {
    "server_first": "the server spoke first",
    "not_http": "the client's first bytes are not HTTP or TLS",
    "ignored": "the host is excluded by --ignore-hosts/--allow-hosts",
    "raw": "relayed as raw TCP (e.g. after a non-WebSocket upgrade)",
}
#: How many leading bytes of each direction a Tunnel keeps.
TUNNEL_FIRST_BYTES = 256


# ASCII header names without a "k" that readers asked for (a few dozen), lowered, as
# bytes: the names whose lookup is a plain bytes comparison (see Headers._get).
_PLAIN_NAMES: dict[str, bytes] = {}


class Headers:
    """Header fields in wire order; names and values as UTF-8 text (surrogateescape).

    Built from the raw bytes (`from_raw`) it decodes only when read: the recorder writes
    mitmproxy's bytes as they are, and most recorded headers are never looked at again.
    Immutable, like the records.
    """

    __slots__ = ("_fields", "_memo", "_raw")

    def __init__(self, fields: tuple[tuple[str, str], ...] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] | None = tuple(fields)
        self._raw: tuple[tuple[bytes, bytes], ...] | None = None
        self._memo: dict[str, str | None] | None = None

    @classmethod
    def from_raw(cls, raw: tuple[tuple[bytes, bytes], ...]) -> Headers:
        h = cls.__new__(cls)
        h._fields, h._raw, h._memo = None, raw, None
        return h

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        if self._fields is None:
            self._fields = tuple((k.decode("utf-8", _SE), v.decode("utf-8", _SE))
                                 for k, v in self._raw)  # type: ignore[union-attr]
        return self._fields

    @property
    def raw(self) -> tuple[tuple[bytes, bytes], ...]:
        """The fields as bytes, exactly as on the wire."""
        if self._raw is None:
            self._raw = tuple((k.encode("utf-8", _SE), v.encode("utf-8", _SE))
                              for k, v in self._fields)  # type: ignore[union-attr]
        return self._raw

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (case-insensitive), or `default`."""
        # Answers are kept: readers ask the same few again and again (is_grpc's
        # content-type, for every span and status of an exchange).
        memo = self._memo
        if memo is not None and name in memo:
            value = memo[name]
            return default if value is None else value
        bname = _PLAIN_NAMES.get(name)
        if bname is not None and self._fields is None:
            # The common case, inline (every reader asks it of every exchange): see _get.
            n = len(bname)
            for k, v in self._raw:  # type: ignore[union-attr]
                if len(k) == n and k.lower() == bname:
                    value = v.decode("utf-8", _SE)
                    break
            else:
                value = None
        else:
            value = self._get(name)
        if memo is None:
            self._memo = {name: value}
        else:
            memo[name] = value
        return default if value is None else value

    def _get(self, name: str) -> str | None:
        lname = name.lower()
        if self._fields is None and lname.isascii():
            # Compared as bytes, decoding only the value found: readers ask for one or
            # two headers of records whose other headers they never look at. Bytes
            # lowering equals text lowering for ASCII names; of all the names that are
            # not ASCII, only those with U+212A (Kelvin), which str.lower maps to "k",
            # can lower to an ASCII name: compared as text when the name has a "k".
            bname = lname.encode()
            n = len(bname)
            if "k" not in lname:
                if len(_PLAIN_NAMES) < 256:
                    _PLAIN_NAMES[name] = bname
                for k, v in self._raw:  # type: ignore[union-attr]
                    # The length first: most names are not it, and tell so without a copy.
                    if len(k) == n and k.lower() == bname:
                        return v.decode("utf-8", _SE)
                return None
            for k, v in self._raw:  # type: ignore[union-attr]
                if k.isascii():
                    # The length first: most names are not it, and tell so without a copy.
                    if len(k) == n and k.lower() == bname:
                        return v.decode("utf-8", _SE)
                elif k.decode("utf-8", _SE).lower() == lname:
                    return v.decode("utf-8", _SE)
            return None
        for k, v in self.fields:
            if k.lower() == lname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.fields if k.lower() == lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self._raw if self._fields is None else self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        if self._raw is not None and other._raw is not None:
            return self._raw == other._raw
        return self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"Headers({self.fields!r})"


class _Message:
    """What requests and responses share: headers and a raw body (decoded views:
    `capture.encoding`, so that records know no codec).

    A body too large to keep (it was streamed past `--max-body`) is kept as its first
    bytes in `body`, with the whole body's length in `body_size` and its SHA-256 in
    `body_sha256`; both are None for a body kept whole.
    """

    __slots__ = ()
    headers: Headers
    body: bytes
    body_size: int | None
    body_sha256: bytes | None

    @property
    def body_truncated(self) -> bool:
        """Only the first bytes of the body were kept (see `body_size`, `body_sha256`)."""
        return self.body_size is not None

    @property
    def size(self) -> int:
        """The whole body's length as on the wire, kept or not."""
        return len(self.body) if self.body_size is None else self.body_size

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@quick_init
@dataclass(frozen=True, slots=True)
class Request(_Message):
    method: str
    scheme: str
    host: str
    port: int
    path: str  # origin-form target, query included
    http_version: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    body_size: int | None = None  # the whole body's length, when `body` is its first bytes
    body_sha256: bytes | None = None  # the whole body's SHA-256, likewise
    trailers: Headers | None = None  # HTTP/2 trailers (gRPC clients rarely send any)

    @property
    def url(self) -> str:
        default = _DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"

    # The target is origin-form (path and query; no fragment is sent), so it is split at
    # the "?" alone: urlsplit would read "//host" as an authority and reject "//[x".
    @property
    def path_only(self) -> str:
        return self.path.partition("?")[0]

    @property
    def query(self) -> str:
        return self.path.partition("?")[2]


@quick_init
@dataclass(frozen=True, slots=True)
class Response(_Message):
    status: int
    reason: str
    http_version: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    body_size: int | None = None  # the whole body's length, when `body` is its first bytes
    body_sha256: bytes | None = None  # the whole body's SHA-256, likewise
    trailers: Headers | None = None  # trailing header fields, e.g. gRPC's grpc-status


@quick_init
@dataclass(frozen=True, slots=True)
class Timing:
    """Every phase mitmproxy stamps, as epoch nanoseconds; None where it did not happen.

    Client/server connection phases predate the request on a reused connection.
    """

    request_start: int
    request_end: int | None = None
    response_start: int | None = None
    response_end: int | None = None
    client_conn_start: int | None = None
    client_tls_done: int | None = None
    server_conn_start: int | None = None
    server_tcp_done: int | None = None
    server_tls_done: int | None = None
    error_at: int | None = None

    @property
    def end(self) -> int:
        """When the exchange was over: response end, else the error, else the request end."""
        # Every reader asks this of every exchange: tested in turn, no tuple built.
        if self.response_end is not None:
            return self.response_end
        if self.error_at is not None:
            return self.error_at
        if self.response_start is not None:
            return self.response_start
        if self.request_end is not None:
            return self.request_end
        return self.request_start

    @property
    def duration_ns(self) -> int:
        return max(0, self.end - self.request_start)


@quick_init
@dataclass(frozen=True, slots=True)
class Party:
    """One side of an exchange and how it was named.

    source: for callers `proxy-auth`, `header`, `listener`, or a local process's
    (`service`, `proxy-user`, `rule`, `process`), else `peer`; for callees `reverse`,
    `service-map`, a local process's, else `host`. A `peer` name is only an address:
    unknown stays visible. A local process's name keeps its PID and command line.
    """

    name: str
    source: str
    address: str | None = None  # "host:port" as seen on the wire
    pid: int | None = None  # the local process it was named by (format minor 6)
    command: str | None = None  # that process's command line, cut to 200 characters


@quick_init
@dataclass(frozen=True, slots=True)
class ErrorInfo:
    kind: str  # one of ERROR_KINDS
    message: str


#: gRPC status codes by number (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
GRPC_STATUS_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                     "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                     "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")


@quick_init
@dataclass(frozen=True, slots=True)
class GrpcMessage:
    """One length-prefixed gRPC message of a request or response body, as it arrived.

    `data` is the message as sent (still compressed with the `grpc-encoding` if
    `compressed`); `timestamp` is when its last byte reached the proxy.
    """

    from_client: bool
    compressed: bool
    timestamp: int
    data: bytes


def is_grpc_content_type(content_type: str | None) -> bool:
    """application/grpc or application/grpc+<codec> (not gRPC-Web), parameters aside."""
    if not content_type or "grpc" not in content_type.lower():
        return False  # most calls: one cheap test, as every span and status asks
    ctype = content_type.split(";")[0].strip().lower()
    return ctype == "application/grpc" or ctype.startswith("application/grpc+")


@quick_init
@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what became of it: a response, an error, or both (cut mid-body)."""

    id: str
    caller: Party
    callee: Party
    request: Request
    timing: Timing
    response: Response | None = None
    error: ErrorInfo | None = None
    test: str | None = None
    test_source: str | None = None  # `header`, `control`, or `ambiguous` (several open)
    route: str | None = None  # route template where known, e.g. /orders/{id}
    streamed: bool = False  # the response body was passed through as it arrived
    websocket: bool = False  # a WebSocket handshake; messages follow as their own records
    redacted: tuple[str, ...] = ()  # what was masked, e.g. "request.header:authorization"
    grpc_messages: tuple[GrpcMessage, ...] = ()  # gRPC only: both bodies split, in order

    @property
    def failed(self) -> bool:
        """A transport error, a 5xx status, or a gRPC status other than OK.

        The one notion of failure every reader uses (show --errors, spans, counts).
        """
        if self.error is not None:
            return True
        if self.response is None:
            return False
        if self.response.status >= 500:
            return True
        code = self.grpc_status
        return code is not None and code != 0

    @property
    def is_grpc(self) -> bool:
        """A gRPC call: content-type application/grpc or application/grpc+<codec>."""
        return is_grpc_content_type(self.request.headers.get("content-type")) or (
            self.response is not None
            and is_grpc_content_type(self.response.headers.get("content-type")))

    @property
    def grpc_status(self) -> int | None:
        """grpc-status from the trailers, or from the headers of a Trailers-Only answer."""
        if self.response is None or not self.is_grpc:
            return None
        r = self.response
        value = (r.trailers.get("grpc-status") if r.trailers is not None else None) \
            or r.headers.get("grpc-status")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return 2  # UNKNOWN: a status that is not a number is no status a client accepts

    @property
    def grpc_status_name(self) -> str | None:
        code = self.grpc_status
        if code is None:
            return None
        return GRPC_STATUS_NAMES[code] if 0 <= code < len(GRPC_STATUS_NAMES) else str(code)

    @property
    def grpc_message(self) -> str | None:
        """grpc-message, percent-decoded as the gRPC HTTP/2 protocol says."""
        if self.response is None:
            return None
        r = self.response
        value = (r.trailers.get("grpc-message") if r.trailers is not None else None) \
            or r.headers.get("grpc-message")
        return None if value is None else unquote(value)

    @property
    def grpc_method(self) -> tuple[str, str] | None:
        """(service, method) of a gRPC call, from its path /package.Service/Method."""
        if not self.is_grpc:
            return None
        service, sep, method = self.request.path_only.strip("/").rpartition("/")
        return (service, method) if sep and service and method else None

    @property
    def status(self) -> int | None:
        return self.response.status if self.response else None


@quick_init
@dataclass(frozen=True, slots=True)
class TestCase:
    """A test case opened and closed through the control API; outcome None if never closed."""

    __test__ = False  # not a pytest class

    name: str
    started: int
    ended: int | None = None
    outcome: str | None = None  # passed | failed | skipped | error | free text


@quick_init
@dataclass(frozen=True, slots=True)
class WebSocketMessage:
    exchange_id: str
    from_client: bool
    is_text: bool
    content: bytes
    timestamp: int


@quick_init
@dataclass(frozen=True, slots=True)
class WebSocketEnd:
    exchange_id: str
    timestamp: int
    close_code: int | None = None
    close_reason: str = ""
    error: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class SpanBatch:
    """OTLP trace data an instrumented service sent to the proxy, kept as received."""

    received: int
    content_type: str  # application/x-protobuf or application/json
    payload: bytes
    peer: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class ServiceLog:
    """One line a service wrote to its stdout or stderr, stamped when it was read."""

    service: str
    stream: str  # stdout | stderr
    line: str  # without its line ending
    timestamp: int


@quick_init
@dataclass(frozen=True, slots=True)
class ResourceSample:
    """What a service's process tree used at one moment (psutil)."""

    service: str
    timestamp: int
    pid: int
    cpu_percent: float  # since the previous sample; 100 is one core busy
    rss: int  # resident memory, bytes, summed over the process tree
    threads: int
    fds: int | None = None  # open file descriptors; None where the platform has none


@quick_init
@dataclass(frozen=True, slots=True)
class SessionHeader:
    """The first record of every capture."""

    version: int
    minor: int
    created: int
    tool: str
    meta: dict[str, object] = field(default_factory=dict)  # listen address, modes, services


@quick_init
@dataclass(frozen=True, slots=True)
class Tunnel:
    """A connection relayed without being parsed as HTTP: who, where, how much, and why.

    Only counts and the first bytes each way are kept, never the whole stream.
    """

    id: str
    caller: Party
    callee: Party
    reason: str  # a key of TUNNEL_REASONS; readers keep unknown values as they are
    started: int
    ended: int | None = None
    bytes_from_client: int = 0
    bytes_from_server: int = 0
    first_from_client: bytes = b""  # at most TUNNEL_FIRST_BYTES; empty for `ignored`
    first_from_server: bytes = b""
    error: ErrorInfo | None = None
    test: str | None = None
    test_source: str | None = None

    @property
    def failed(self) -> bool:
        """The connection failed in transport (e.g. the server refused it), to a host that
        was not left out on purpose: an ignored host's failures are not the tests'."""
        return self.error is not None and self.reason != "ignored"

    @property
    def duration_ns(self) -> int:
        return max(0, (self.ended or self.started) - self.started)

    @property
    def why(self) -> str:
        """The reason in words."""
        return TUNNEL_REASONS.get(self.reason, self.reason)


type Record = (Exchange | TestCase | WebSocketMessage | WebSocketEnd | SpanBatch | Tunnel
               | ServiceLog | ResourceSample)
