"""Connections mitmproxy relays without parsing them as HTTP, kept as Tunnel records.

mitmproxy relays a connection as raw TCP (its TCPLayer) when the server speaks first,
when the client's first bytes do not look like HTTP or TLS, and for hosts excluded by
`ignore_hosts`/`allow_hosts`. Its `tcp_*` hooks then see every chunk; here only counts
and the first bytes each way are kept, so memory stays flat however long the tunnel is.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mitmproxy import ctx, http, tcp
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import TCPLayer

from tapproxy.capture.model import TUNNEL_FIRST_BYTES, TUNNEL_REASONS, ErrorInfo, Party, Tunnel
from tapproxy.proxy.bodies import body_size
from tapproxy.proxy.builtin_addons import builtin_addon
from tapproxy.proxy.convert import classify_error
from tapproxy.report.parties import party_name

if TYPE_CHECKING:
    from tapproxy.capture.writer import CaptureWriter
    from tapproxy.proxy.naming import Naming
    from tapproxy.supervisor.testcases import OpenTests

__all__ = ["TunnelLog", "host_ignored", "unparsed_reason"]

log = logging.getLogger(__name__)

_REASON = "tapproxy.tunnel_reason"  # flow.metadata: why next_layer chose raw TCP
NeedsMoreData = builtin_addon("next_layer").NeedsMoreData


def unparsed_reason(data_client: bytes, data_server: bytes, ignored: bool) -> str:
    """Why mitmproxy chose raw TCP for a connection that began with these bytes."""
    if ignored:
        return "ignored"
    if data_server and not data_client:
        return "server_first"
    return "not_http"


def host_ignored(host: str, port: int) -> bool:
    """Whether `host:port` is excluded by mitmproxy's ignore_hosts/allow_hosts, matched as
    mitmproxy matches them (re.search, case-insensitive, on "host:port")."""
    o = ctx.options
    if not (o.allow_hosts or o.ignore_hosts):
        return False
    target = f"{host}:{port}"
    if o.allow_hosts and not any(re.search(p, target, re.IGNORECASE) for p in o.allow_hosts):
        return True
    return any(re.search(p, target, re.IGNORECASE) for p in o.ignore_hosts)


def _ignored(nextlayer: layer.NextLayer) -> bool:
    """Whether mitmproxy's ignore_hosts/allow_hosts check is what made this raw TCP."""
    o = ctx.options
    if not (o.ignore_hosts or o.allow_hosts):
        return False
    decider = ctx.master.addons.get("nextlayer")
    try:
        # mitmproxy's own matching (server address, SNI, Host header): the same answer
        # it gave, not a second opinion that could differ from it.
        return bool(decider._ignore_connection(
            nextlayer.context, nextlayer.data_client(), nextlayer.data_server()))
    except (AttributeError, NeedsMoreData):  # a mitmproxy without that method
        log.debug("could not ask mitmproxy whether the connection was ignored", exc_info=True)
        return False


@dataclass(slots=True)
class _Seen:
    """What is kept of a live tunnel: names, counts and the first bytes each way."""

    caller: Party
    callee: Party
    reason: str
    test: str | None
    test_source: str | None
    started: int
    keep_bytes: bool
    from_client: int = 0
    from_server: int = 0
    first_client: bytearray = field(default_factory=bytearray)
    first_server: bytearray = field(default_factory=bytearray)


def _add(first: bytearray, content: bytes) -> None:
    room = TUNNEL_FIRST_BYTES - len(first)
    if room > 0:
        first += content[:room]


class TunnelLog:
    """The recorder's hooks for what is not HTTP (a mitmproxy addon nested in the Recorder):
    one Tunnel record and one warning per connection, named as the recorder names callers
    and callees, written through its writer.

    `trim_messages` drops each chunk from the flow once counted (mitmproxy keeps them all
    otherwise); the mitmdump addon leaves them for mitmproxy's own tools, except those of
    ignored hosts.
    """

    def __init__(self, naming: Naming, tests: OpenTests, writer: CaptureWriter,
                 warn: Callable[[str], None], trim_messages: bool = True) -> None:
        self._naming = naming
        self._tests = tests
        self._writer = writer
        self._warn = warn
        self._trim = trim_messages
        self._open: dict[str, _Seen] = {}  # by flow id: only tunnels still open
        self.count = 0

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Note why mitmproxy chose raw TCP."""
        if nextlayer.layer is None:
            # Under mitmdump a script's hooks run before mitmproxy's NextLayer addon: ask
            # it now. It leaves a layer that is already chosen alone when its turn comes.
            decider = ctx.master.addons.get("nextlayer")
            if decider is not None:
                decider.next_layer(nextlayer)
        chosen = nextlayer.layer
        if isinstance(chosen, TCPLayer) and chosen.flow is not None:
            chosen.flow.metadata[_REASON] = unparsed_reason(
                nextlayer.data_client(), nextlayer.data_server(), _ignored(nextlayer))

    def tcp_start(self, flow: tcp.TCPFlow):
        # Named once the client's process lookup is done (the raw layer waits for us).
        return self._naming.after_lookup(flow.client_conn, self._tcp_start, flow)

    def _tcp_start(self, flow: tcp.TCPFlow) -> None:
        n = self._naming
        address = flow.server_conn.address
        callee = (n.callee_at(flow.client_conn, address[0], address[1]) if address
                  else Party("unknown", "host"))
        caller = n.caller_of(flow.client_conn)
        test, test_source = self._tests.attribute(None)
        # Not chosen by next_layer: mitmproxy's HTTP layer handed the connection over
        # to raw TCP itself (a 101 answer to an upgrade other than WebSocket).
        reason = flow.metadata.get(_REASON, "raw")
        self._open[flow.id] = _Seen(caller, callee, reason, test, test_source,
                                    int(flow.timestamp_created * 1e9),
                                    keep_bytes=reason != "ignored")
        if reason != "ignored":  # asked for by the user: not worth a warning each
            self._warn(f"{party_name(caller)} → {callee.name} ({callee.address}): not parsed as "
                       f"HTTP ({TUNNEL_REASONS.get(reason, reason)}); recorded "
                       "as a tunnel (byte counts and the first bytes only)")

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        seen = self._open.get(flow.id)
        if seen is None or not flow.messages:
            return
        m = flow.messages[-1]
        if m.from_client:
            seen.from_client += len(m.content)
            if seen.keep_bytes:
                _add(seen.first_client, m.content)
        else:
            seen.from_server += len(m.content)
            if seen.keep_bytes:
                _add(seen.first_server, m.content)
        if self._trim or not seen.keep_bytes:
            # mitmproxy sends the chunk from its own reference after this hook returns.
            # An ignored host's chunks go whatever the setting: mitmproxy would not have
            # kept them had show_ignored_hosts not been turned on for these hooks.
            flow.messages.clear()

    def left_out(self, flow: http.HTTPFlow, caller: Party, test: str | None,
                 test_source: str | None, error: ErrorInfo | None = None) -> Tunnel:
        """The record of an HTTP flow to an ignored host that mitmproxy parsed all the same
        (a plain-HTTP request, or a CONNECT that could not reach its server): an
        `ignored` tunnel, so ignored hosts stay out of the exchanges. Counts are of the
        bodies; no bytes are kept."""
        if error is None and flow.error is not None:
            error = ErrorInfo(classify_error(flow.error.msg), flow.error.msg)
        q, r = flow.request, flow.response
        self.count += 1
        return Tunnel(id=flow.id, caller=caller, callee=self._naming.callee(flow),
                      reason="ignored", started=int(q.timestamp_start * 1e9),
                      ended=time.time_ns(), bytes_from_client=body_size(q),
                      bytes_from_server=body_size(r) if r else 0, error=error, test=test,
                      test_source=test_source)

    def tcp_end(self, flow: tcp.TCPFlow):
        """Write the record of a tunnel that ended (tcp_end) or failed (tcp_error)."""
        seen = self._open.pop(flow.id, None)
        if seen is None:  # already written by close_all
            return None
        error = None
        if flow.error is not None:
            error = ErrorInfo(classify_error(flow.error.msg), flow.error.msg)
        return self._writer.submit(self._record(flow.id, seen, time.time_ns(), error))

    tcp_error = tcp_end

    def close_all(self) -> list[Tunnel]:
        """Records of the tunnels still open as the recording stops (`ended` nil): mitmproxy
        does not end them through its hooks when it shuts down."""
        open_, self._open = self._open, {}
        return [self._record(flow_id, seen, None, None) for flow_id, seen in open_.items()]

    def _record(self, flow_id: str, seen: _Seen, ended: int | None,
                error: ErrorInfo | None) -> Tunnel:
        self.count += 1
        return Tunnel(
            id=flow_id, caller=seen.caller, callee=seen.callee, reason=seen.reason,
            started=seen.started, ended=ended,
            bytes_from_client=seen.from_client, bytes_from_server=seen.from_server,
            first_from_client=bytes(seen.first_client),
            first_from_server=bytes(seen.first_server),
            error=error, test=seen.test, test_source=seen.test_source,
        )
