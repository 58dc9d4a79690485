"""Embedding mitmproxy: one in-process master with the recorder, started and stopped cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from tapproxy.errors import ProxyError
from tapproxy.proxy.addon_group import AddonGroup
from tapproxy.proxy.h2c import H2cPriorKnowledge
from tapproxy.proxy.recorder import Recorder
from tapproxy.proxy.reverse_upstreams import (
    Held,
    StartingServices,
    connect_reverse_upstreams_on_request,
)
from tapproxy.proxy.routing import mitmproxy_modes, reverse_mode
from tapproxy.proxy.upstream_tls import UpstreamHandshakeWatch, handshake_limit
from tapproxy.supervisor.options import Address, RecordOptions

__all__ = ["RecordingProxy"]


def mitmproxy_addons() -> list:
    """The mitmproxy addons a recording proxy runs: 9 of mitmproxy's 31 defaults.

    mitmproxy offers every flow event to every addon (a getattr on each, for each of ~8
    events per request). The 22 left out are interactive features tapproxy does not
    expose (playback, map/modify, sticky cookies, save, scripts, onboarding, proxy
    auth…); without them mitmproxy spends ~430 µs less CPU per small request here and
    serves 1.5 times the small and 1.1 times the 1 MiB requests per second
    (benchmarks/README.md).
    Kept: the core and proxy server, layer selection and TLS, DNS, refusing clients from
    public addresses (`block`, as mitmproxy does by default), and the three that keep
    HTTP correct through a proxy (h2c upgrades, Alt-Svc, DNS HTTPS records).
    """
    from tapproxy.proxy.builtin_addons import builtin_addon

    (block, core, disable_h2c, dns_resolver, next_layer, proxyserver,
     strip_dns_https_records, tlsconfig, update_alt_svc) = (builtin_addon(name) for name in (
        "block", "core", "disable_h2c", "dns_resolver", "next_layer", "proxyserver",
        "strip_dns_https_records", "tlsconfig", "update_alt_svc"))

    class _CaLoadedOnce(tlsconfig.TlsConfig):
        """mitmproxy's TLS addon, without loading the CA again as mitmproxy starts: its
        `running` reloads it in case `configure` was never told of the confdir (a
        mitmproxy FIXME), which here it always was, by tapproxy's options update. One
        load checks the CA's RSA key, 30 ms and more of every start-up."""

        name = "tlsconfig"  # as mitmproxy's own, for whoever looks it up by name

        def running(self) -> None:
            if self.certstore is None:
                super().running()

    return [
        core.Core(),
        block.Block(),
        strip_dns_https_records.StripDnsHttpsRecords(),
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        next_layer.NextLayer(),
        _CaLoadedOnce(),
        update_alt_svc.UpdateAltSvc(),
    ]


class _StderrLog(logging.Handler):
    """mitmproxy's and tapproxy's log lines on stderr, escaped like all terminal output
    (they quote URLs and hosts). Errors in addon hooks (the recorder's among them) always
    show; with `verbose`, all of mitmproxy's log from INFO up, with tracebacks. Failures to
    start are left to the one-line error tapproxy gives itself."""

    _ALWAYS = ("mitmproxy.addonmanager", "mitmproxy.master")  # addon and task errors

    def __init__(self, verbose: bool) -> None:
        super().__init__(logging.INFO if verbose else logging.WARNING)
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.name.startswith("tapproxy"):
            return super().filter(record)
        return record.levelno >= logging.ERROR and record.name in self._ALWAYS

    def emit(self, record: logging.LogRecord) -> None:
        from tapproxy.report.printable import printable

        source = "mitmproxy" if record.name.startswith("mitmproxy") else "tapproxy"
        message = record.getMessage()
        if client := getattr(record, "client", None):  # mitmproxy names the connection
            message = f"[{client[0]}:{client[1]}] {message}"
        text = f"{source}: {record.levelname.lower()}: {printable(message)}"
        if self.verbose and record.exc_info:
            text += "\n" + printable(logging.Formatter().formatException(record.exc_info),
                                      lines=True)
        with contextlib.suppress(OSError):  # stderr gone: nothing left to tell
            print(text, file=sys.stderr, flush=True)


class _Ready:
    """Addon that tells the runner mitmproxy has finished starting its servers."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def running(self) -> None:
        self.event.set()


class RecordingProxy:
    """mitmproxy (forward and reverse listeners) recording into one capture.

        async with RecordingProxy(opts) as proxy:
            ...  # send traffic through proxy.listen
    """

    def __init__(self, opts: RecordOptions, verbose: bool = False,
                 publish: bool = True) -> None:
        """`publish=False`: the capture replaces a previous one only on `publish()`."""
        self.options = opts
        self._verbose = verbose
        self._publish = publish
        self.recorder: Recorder | None = None
        self._master = None
        self._task: asyncio.Task | None = None
        self._log: logging.Handler | None = None
        self._starting = StartingServices()

    @property
    def control(self) -> Address | None:
        c = self.recorder.control if self.recorder else None
        if c is None or c.port is None or self.options.control is None:
            return None
        return Address(self.options.control.host, c.port)

    async def start(self) -> None:
        """Bind every listener or raise ProxyError naming the one that failed."""
        from mitmproxy import options
        from mitmproxy.master import Master

        from tapproxy.proxy.certs import ca_cert_path

        # The CA first: mitmproxy would log each failure to make it as an addon error
        # and run on without one; this is one ProxyError naming the directory.
        ca_cert_path(self.options.confdir)
        self._log = _StderrLog(self._verbose)
        for name in ("mitmproxy", "tapproxy"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO if self._verbose or name == "tapproxy"
                            else logging.ERROR)
            logger.addHandler(self._log)
        self.recorder = Recorder(self.options)
        self.recorder.publish_when_running = self._publish
        try:
            await self.recorder.start_control()
            await self.recorder.start_receiver()
            opts = options.Options()
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(_quiet_cancellations)
            self._master = master = Master(opts, event_loop=loop)
            ready = _Ready()
            # H2cPriorKnowledge amends the layer NextLayer chose (and the recorder's tunnel
            # log noted), so it has the last word: a decision it defers stays deferred.
            connect_reverse_upstreams_on_request()  # a service down: a 502, recorded
            silence = handshake_limit(self.options.idle_timeout)
            # tapproxy's addons as one entry: mitmproxy offers every event to every addon,
            # hooked or not, and five separate entries cost ~50 µs a request in dispatch.
            master.addons.add(*mitmproxy_addons(), AddonGroup(
                self._starting, UpstreamHandshakeWatch(silence), self.recorder,
                H2cPriorKnowledge(), ready))
            update = {
                "mode": mitmproxy_modes(self.options),
                "confdir": str(self.options.confdir),
                # A streamed body is kept by the recorder's BodyTap, bounded; mitmproxy's
                # own copy would hold it whole in memory.
                "store_streamed_bodies": False,
                # A fronted service sees the Host its caller sent, as without tapproxy:
                # its absolute redirects and links then name the public port, not the
                # private one (which would bypass the tap). Only reverse mode rewrites it.
                "keep_host_header": True,
                "ssl_insecure": self.options.insecure,
                "tcp_timeout": self.options.idle_timeout,
                "allow_hosts": list(self.options.allow_hosts),
                "ignore_hosts": list(self.options.ignore_hosts),
                # Ignored hosts still get tcp_* hooks, so they leave a tunnel record;
                # the recorder drops each chunk once counted, so memory stays flat.
                "show_ignored_hosts": True,
            }
            if self.options.upstream_ca is not None:
                update["ssl_verify_upstream_trusted_ca"] = str(self.options.upstream_ca)
            opts.update(**update)
            self._task = asyncio.create_task(master.run(), name="tapproxy-mitmproxy")
            waiter = asyncio.create_task(ready.event.wait())
            await asyncio.wait([self._task, waiter], return_when=asyncio.FIRST_COMPLETED)
            if not ready.event.is_set():
                waiter.cancel()
                self._task.result()  # re-raises what stopped mitmproxy
                raise ProxyError("mitmproxy stopped during start-up")
            failures = [
                f"cannot listen for {s.mode.description.lower()} ({s.mode.full_spec}): "
                f"{_reason(s.last_exception)}"
                for s in master.addons.get("proxyserver").servers
                if s.last_exception is not None
            ]
            if failures:
                raise ProxyError("; ".join(failures))
        except BaseException:
            await self.stop()
            raise

    async def add_reverse(self, r) -> None:
        """Put a reverse listener in front of `r.upstream` while running; ProxyError if
        it cannot bind. mitmproxy rebinds its servers when its `mode` option changes."""
        assert self._master is not None and self.recorder is not None
        mode = reverse_mode(r)
        self.recorder.add_reverse(r)  # before the listener exists: no request goes unnamed
        opts = self._master.options
        opts.update(mode=[*opts.mode, mode])
        proxyserver = self._master.addons.get("proxyserver")
        await proxyserver.setup_servers()  # the update's own setup may still be running
        for s in proxyserver.servers:
            if s.mode.full_spec == mode and s.last_exception is not None:
                raise ProxyError(f"cannot listen for {s.mode.description.lower()} "
                                 f"({mode}): {_reason(s.last_exception)}")

    def hold(self, upstream: str, name: str) -> Held:
        """Hold connections to `upstream` (http://host:port) until `release()`d: the
        service behind a reverse listener is still starting."""
        host, _, port = upstream.rpartition("//")[2].rpartition(":")
        return self._starting.hold((host, int(port)), name)

    def publish(self) -> None:
        """Put the capture in place (after a start with `publish=False`)."""
        assert self.recorder is not None
        self.recorder.writer.publish()

    def request_stop(self) -> None:
        """Ask mitmproxy to shut down (thread- and signal-safe)."""
        if self._master is not None:
            self._master.shutdown()

    async def wait(self) -> None:
        """Run until stopped, then make sure the capture is complete on disk."""
        if self._task is not None:
            await self._task
        await self._finish()

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (at most `timeout` s) until no client connection is open: those that came
        while a service failed to start get their 502 before the proxy stops."""
        if self._master is None:
            return
        proxyserver = self._master.addons.get("proxyserver")
        deadline = asyncio.get_running_loop().time() + timeout
        while proxyserver.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.request_stop()
        await self.wait()

    async def _finish(self) -> None:
        # The recorder's `done` hook closes the writer; this covers a start that failed
        # before mitmproxy ran its hooks.
        if self.recorder is not None:
            await self.recorder.done()
        for name in ("mitmproxy", "tapproxy"):
            logging.getLogger(name).removeHandler(self._log)

    async def __aenter__(self) -> RecordingProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's exception handler: a connection's task cancelled as the proxy stops
    (a TLS handshake with an upstream still pending at Ctrl-C) is no error, though
    asyncio's stream callback reports it as one with a traceback; the rest as before."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def _reason(e: BaseException) -> str:
    text = str(e)
    if "address already in use" in text.lower() or getattr(e, "errno", None) == 98:
        return "address already in use"
    return text
