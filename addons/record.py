"""Record a tapproxy capture from plain mitmdump / mitmweb.

    mitmdump -s addons/record.py --set tapproxy_output=run.tap \
        --set tapproxy_service=orders=127.0.0.1:5001 --set tapproxy_control=127.0.0.1:8081

Writes the same `.tap` format as `tapproxy record` (same recorder, same redaction).
Named listeners: `--mode regular@8082 --set tapproxy_listener=browser=8082` names every
caller on port 8082 `browser`. mitmproxy's own `--allow-hosts`/`--ignore-hosts` leave
hosts unparsed; such connections are recorded as tunnels (as are other non-HTTP ones).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import ctx

from tapproxy.proxy.h2c import H2cPriorKnowledge
from tapproxy.proxy.recorder import Recorder
from tapproxy.supervisor.options import Address
from tapproxy.supervisor.record_options import record_options


class TapproxyRecord:
    """Declares tapproxy's options to mitmproxy and forwards hooks to the Recorder."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None

    def load(self, loader) -> None:
        if ctx.master.addons.get("h2cpriorknowledge") is None:
            # It amends mitmproxy's NextLayer decision (and what the recorder noted of it),
            # so it must come last in the addon chain; a script's own addons come before
            # NextLayer.
            ctx.master.addons.add(H2cPriorKnowledge())
        loader.add_option("tapproxy_output", str, "tapproxy.tap", "Capture file to write.")
        loader.add_option("tapproxy_service", Sequence[str], [],
                          "NAME=HOST[:PORT]: name the service at that address.")
        loader.add_option("tapproxy_control", str, "off",
                          "Control API address HOST:PORT, or 'off'.")
        loader.add_option("tapproxy_redact", bool, True, "Mask credentials before writing.")
        loader.add_option("tapproxy_redact_name", Sequence[str], [],
                          "Also mask this name as header, query/form field and JSON key; "
                          "a NAME starting with $ is a JSON path.")
        loader.add_option("tapproxy_redact_header", Sequence[str], [], "Also mask this header.")
        loader.add_option("tapproxy_redact_json", Sequence[str], [], "Mask this JSON path.")
        loader.add_option("tapproxy_max_body", str, "1m",
                          "Longer bodies stream through; the record keeps this much of them "
                          "plus their length and SHA-256.")
        loader.add_option("tapproxy_listener", Sequence[str], [],
                          "NAME=[HOST:]PORT: every caller on the listener (a --mode "
                          "regular@PORT) at that port is named NAME.")

    def configure(self, updated) -> None:
        if ctx.options.store_streamed_bodies:
            # Streamed bodies (SSE, chunked, large) are kept by the recorder, bounded by
            # tapproxy_max_body; mitmproxy's own copy would hold each one whole in memory.
            ctx.options.store_streamed_bodies = False
        if not ctx.options.show_ignored_hosts:
            # Ignored hosts still reach the tcp_* hooks, so they leave a tunnel record (the
            # recorder drops their chunks once counted: memory stays flat).
            ctx.options.show_ignored_hosts = True
        if self.recorder is not None:
            return
        o = ctx.options
        # mitmdump's own listener, so the recorder refuses requests addressed to it.
        own = Address(o.listen_host or "0.0.0.0", o.listen_port or 8080)
        self.recorder = Recorder(record_options(
            Path(o.tapproxy_output), listen=[str(own), *o.tapproxy_listener],
            service=o.tapproxy_service, control=o.tapproxy_control,
            no_redact=not o.tapproxy_redact, redact=o.tapproxy_redact_name,
            redact_header=o.tapproxy_redact_header, redact_json=o.tapproxy_redact_json,
            max_body=o.tapproxy_max_body, allow_hosts=o.allow_hosts,
            ignore_hosts=o.ignore_hosts, spell=lambda name: f"tapproxy_{name}",
        ), trim_tcp_messages=False)  # mitmproxy's own tools may show a tunnel's messages

    def client_connected(self, client):
        return self.recorder.client_connected(client)  # names local callers by process

    def http_connect(self, flow):
        return self.recorder.http_connect(flow)

    def http_connect_error(self, flow):
        return self.recorder.http_connect_error(flow)

    def next_layer(self, nextlayer):
        return self.recorder.tunnels.next_layer(nextlayer)

    def tcp_start(self, flow):
        return self.recorder.tunnels.tcp_start(flow)

    def tcp_message(self, flow):
        return self.recorder.tunnels.tcp_message(flow)

    def tcp_end(self, flow):
        return self.recorder.tunnels.tcp_end(flow)

    def tcp_error(self, flow):
        return self.recorder.tunnels.tcp_error(flow)

    def requestheaders(self, flow):
        return self.recorder.requestheaders(flow)

    def responseheaders(self, flow):
        return self.recorder.responseheaders(flow)

    def response(self, flow):
        return self.recorder.response(flow)

    def error(self, flow):
        return self.recorder.error(flow)

    def tls_failed_client(self, data):
        return self.recorder.tls_failed_client(data)

    def websocket_message(self, flow):
        return self.recorder.websocket_message(flow)

    def websocket_end(self, flow):
        return self.recorder.websocket_end(flow)

    async def running(self):
        await self.recorder.running()

    async def done(self):
        await self.recorder.done()
        w = self.recorder.writer
        if w.failure is not None:
            print(f"tapproxy: error: {w.records_lost} records lost: {w.failure}",
                  file=sys.stderr, flush=True)
            # mitmdump has no way for an addon to set its exit code; leaving through
            # SystemExit here is what makes it exit 1 (mitmproxy lets BaseException pass).
            sys.exit(1)


addons = [TapproxyRecord()]
