"""`pytest --tapproxy-replay CAPTURE`: a suite runs against a capture, not its services.

Glue only (matching, listeners and near-miss tables are `tapproxy.replay`'s): every
`tapproxy_service(name, ..., port=P)` is served from the capture on P (a free port
without port=) instead of being started; `tapproxy.env` points clients at the replay's
forward proxy; each test's requests are matched against its own recorded exchanges
first; a request nothing matched fails the test, with its near-miss table in the
test's `tapproxy replay` section. With `--tapproxy-record-missing` the services are
started too, plainly on private ports, and what the capture lacks is sent to them and
recorded into CAPTURE-missing.tap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

from tapproxy.capture import Exchange
from tapproxy.errors import TapproxyError

__all__ = ["ReplaySession"]


class ReplaySession:
    """The plugin's state when replaying (what `Tapproxy` and `TapproxyService` use)."""

    replaying = True

    def __init__(self, config: pytest.Config, capture: Path, record_missing: bool) -> None:
        self.config = config
        self.capture = self.shown_capture = capture
        self.record_missing = record_missing
        self.current: pytest.Item | None = None
        self.services: dict = {}
        self.proxy = self.control = None  # no recording proxy: the replay answers
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        # An xdist controller runs no tests: its workers replay, it adds their figures up.
        self.controller = self.worker is None and config.getoption("dist", "no") != "no"
        self._parts: list[tuple[int, int, int, list[int]]] = []
        self.recorded_missing = 0
        self._envs: dict[str | None, dict[str, str]] = {}
        self._background = None
        self._replay = None
        self.stats = None

    @property
    def confdir(self) -> Path:
        return Path(self.config.getoption("tapproxy_confdir") or "~/.mitmproxy").expanduser()

    @property
    def missing_output(self) -> Path:
        """Where --tapproxy-record-missing writes: one capture per xdist worker."""
        suffix = f"-{self.worker}" if self.worker else ""
        return self.capture.with_name(f"{self.capture.stem}-missing{suffix}.tap")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.controller:
            return
        with warnings.catch_warnings():  # mitmproxy's imports warn; the output is the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            from tapproxy.replay import BackgroundReplay, Replay, noise_mask
            from tapproxy.replay.matching import CRITERIA
            from tapproxy.replay.options import ReplayOptions
            from tapproxy.supervisor.fronting import free_loopback_port
            from tapproxy.supervisor.options import Address

        self.listen = Address("127.0.0.1", free_loopback_port())
        opts = ReplayOptions(capture=self.capture, criteria=CRITERIA, listen=self.listen,
                             confdir=self.confdir,
                             # An upstream per service, added as each one starts.
                             missing_later=self.record_missing,
                             missing_output=self.missing_output)
        try:
            replay = Replay(opts, noise_mask())
            replay.prepare(lambda callees: ())
            self._background = BackgroundReplay(replay)
            with warnings.catch_warnings():  # the forward proxy imports mitmproxy
                warnings.simplefilter("ignore", DeprecationWarning)
                self._background.start()
        except TapproxyError as e:
            raise pytest.UsageError(f"tapproxy: --tapproxy-replay: {e}") from None
        self._replay = replay

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        """What the replay serves, and what it cannot serve whole (said before any test)."""
        if self._replay is None:
            return []
        index = self._replay.index
        return [f"tapproxy: replaying {index.path} ({len(index.entries)} exchanges)",
                *self._replay.warnings()]

    def env(self, caller: str | None) -> dict[str, str]:
        from tapproxy.proxy.certs import env_exports

        if caller not in self._envs:
            self._envs[caller] = env_exports(self.listen, self.confdir, caller)
        return dict(self._envs[caller])

    def serve(self, name: str, port: int | None, live_url: str | None) -> int:
        """Serve the recorded service `name` on `port` (None: a free one); its port.
        `live_url`: where its misses go with --tapproxy-record-missing."""
        replay = self._replay
        try:
            address = self._background.run(replay.add_service(name, port or 0))
        except TapproxyError as e:
            if port and self.worker is not None and "in use" in str(e):
                raise type(e)(f"{e} (each pytest-xdist worker serves its own: give "
                              "port=tapproxy_service.worker_port(P))") from None
            raise
        if live_url is not None and replay.missing is not None:
            self._background.call(replay.missing.add_upstream, name, live_url)
        return address.port

    def start_live(self, name: str, argv: Sequence[str], env: dict[str, str] | None):
        """The real service, started plainly on a private port (--tapproxy-record-missing)."""
        from tapproxy.supervisor.fronting import ServiceProcess

        process = ServiceProcess(name, list(argv), env=env)
        process.start()
        return process

    # -- each test -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.current = item
        self._background.call(self._replay.matcher.start_test, item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        rep = yield
        matcher = self._replay.matcher
        if rep.when == "call":
            misses = self._background.call(
                lambda: [m for m in matcher.misses if m.test == item.nodeid])
            if misses:
                table = "\n\n".join("\n".join(m.lines) for m in misses)
                rep.sections.append(("tapproxy replay", table))
                if rep.passed:
                    rep.outcome = "failed"
                    rep.longrepr = (f"tapproxy replay: {len(misses)} request(s) had no "
                                    f"recorded answer:\n{table}")
        if rep.when == "teardown":
            self._background.call(matcher.end_test, item.nodeid)
            self.current = None
        return rep

    def exchanges(self, nodeid: str) -> list[Exchange]:
        """The recorded exchanges that answered the test's requests."""
        replay = self._replay
        return self._background.call(
            lambda: [replay.index.exchange(e) for e in replay.matcher.served(nodeid)])

    # -- the end -------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        for svc in reversed(self.services.values()):
            svc.stop()
        if self._background is not None:
            missing, matcher = self._replay.missing, self._replay.matcher
            unused = self._background.call(matcher.unused_numbers)
            self.stats = self._background.stop()
            self.recorded_missing = missing.count if missing is not None else 0
            workeroutput = getattr(self.config, "workeroutput", None)
            if workeroutput is not None:
                s = self.stats
                workeroutput["tapproxy_replay"] = [s.matched, s.unmatched, s.recorded, unused]
                workeroutput["tapproxy_replay_missing"] = self.recorded_missing
        if self._saw_nothing() and session.testscollected and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # nothing passes silently

    def pytest_testnodedown(self, node, error) -> None:  # xdist controller
        from tapproxy.replay import ReplayStats

        out = getattr(node, "workeroutput", {})
        if "tapproxy_replay" in out:
            self._parts.append(tuple(out["tapproxy_replay"]))  # type: ignore[arg-type]
            self.recorded_missing += out.get("tapproxy_replay_missing", 0)
            self.stats = ReplayStats.merged(self._parts)

    def _saw_nothing(self) -> bool:
        return self.stats is not None and self.stats.matched + self.stats.unmatched == 0

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.stats is None:
            return
        tr = terminalreporter
        tr.write_sep("-", "tapproxy replay")
        tr.write_line(f"capture: {self.capture}")
        for line in self.stats.lines():
            tr.write_line(line)
        if self._saw_nothing():
            tr.write_line("replayed nothing: no request reached the replay (so this run "
                          "checked nothing against it)")
        if self.recorded_missing:
            where = (self.capture.with_name(f"{self.capture.stem}-missing-gw*.tap")
                     if self.controller else self.missing_output)
            tr.write_line(f"recorded {self.recorded_missing} missing exchange(s) to {where}")
