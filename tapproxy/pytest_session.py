"""The pytest plugin's state for a recorded run (`pytest --tapproxy`, `--tapproxy-url`):
the proxy, each test opened and closed, and the failure section of a failing test.

Loaded only for such a run: `tapproxy.pytest_plugin`, which every pytest run of a
project with tapproxy installed imports, stays small.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tapproxy.capture import (
    CaptureWriter,
    Exchange,
    merge_captures,
    new_header,
    open_capture,
)
from tapproxy.capture.runs import prune_runs
from tapproxy.errors import ProxyError, TapproxyError, UsageError
from tapproxy.pytest_handles import TEST_CALLER
from tapproxy.pytest_records import RunningTestRecords
from tapproxy.pytest_settings import Settings

if TYPE_CHECKING:
    from tapproxy.pytest_handles import TapproxyService

__all__ = ["Session"]

_START = pytest.StashKey[int]()
_OUTCOME = pytest.StashKey[str]()


class Session:
    """The plugin's state for one pytest process: controller, worker, or both at once."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.capture = settings.capture
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        # An xdist controller runs no tests: its workers record, it merges.
        self.controller = self.worker is None and config.getoption("dist", "no") != "no"
        self.parts: list[Path] = []
        self.proxy = None  # BackgroundProxy when embedded
        self.control = None  # ControlClient
        self.proxy_capture: Path | None = None  # the proxy's, read here (embedded)
        self._running: RunningTestRecords | None = None  # its reading, read on
        self.shown_capture: Path = self.capture  # what the footer names
        self._envs: dict[str | None, dict[str, str]] = {}
        self.otlp_receive = None  # Address of the embedded proxy's OTLP receiver
        self.journal = None
        self._journal_writer: CaptureWriter | None = None
        self.services: dict[str, TapproxyService] = {}
        self.services_started = False  # by any worker: the plugin's capture has their output
        self.current: pytest.Item | None = None
        self.failures: list[tuple[str, str]] = []  # (node id, first failure line)
        self.quiet: list[str] = []  # tests that sent nothing through the proxy
        # The failure section's and the contracts' modules load when first needed: a run
        # whose tests pass without contracts gets to its first test without them.
        self.contracts = None
        if settings.contracts:
            from tapproxy.pytest_contracts import ContractWatch

            self.contracts = ContractWatch(settings.contracts, settings.contract_specs,
                                           settings.contract_strict)

    # -- session -------------------------------------------------------------------------

    def _part(self, what: str) -> Path:
        return self.capture.with_name(f".{self.capture.name}.{self.worker or 'main'}.{what}")

    @pytest.hookimpl(optionalhook=True)  # xdist's hooks: unknown without it
    def pytest_configure_node(self, node) -> None:  # xdist controller: one capture name
        node.workerinput["tapproxy_capture"] = str(self.capture)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.controller:
            return
        with warnings.catch_warnings():
            # The runner imports mitmproxy, and it ldap3, which warns on import: a test
            # run's output is the user's, not a dependency's. So import it here, quietly.
            warnings.simplefilter("ignore", DeprecationWarning)
            import tapproxy.proxy.runner  # noqa: F401
            from tapproxy.proxy.embedded import ControlClient, background_proxy
            from tapproxy.supervisor.fronting import free_loopback_port
            from tapproxy.supervisor.options import Address, RecordOptions
            from tapproxy.supervisor.servicewatch import ServiceJournal
            from tapproxy.supervisor.workers import resolve_workers

        try:
            url = self.config.getoption("tapproxy_url")
            receive = self.config.getoption("tapproxy_otlp_receive")
            inject = self.config.getoption("tapproxy_inject_traceparent")
            if url and (receive or inject):  # a running tapproxy has its own (record's)
                given = "--tapproxy-otlp-receive" if receive else "--tapproxy-inject-traceparent"
                raise UsageError(f"{given} needs --tapproxy (not --tapproxy-url)")
            if url:
                # Its capture may live where this machine cannot read it (a compose
                # sidecar, another host): a test's records come through the control API.
                self.control = ControlClient(url)
                self.listen = self.control.proxy_address()
                # The tests' own calls are `tests` here too, when the proxy runs on this
                # host and can see this process (not a sidecar's: named by address).
                self.control.name_process(os.getpid(), TEST_CALLER)
                self.shown_capture = Path(str(self.control.stats().get("capture", "")))
            else:
                if receive:
                    self.otlp_receive = Address("127.0.0.1", free_loopback_port())
                opts = RecordOptions(output=self._part("proxy.tap"),
                                     listen=Address("127.0.0.1", free_loopback_port()),
                                     control=Address("127.0.0.1", 0), confdir=self.confdir,
                                     process_callers=not self.config.getoption(
                                         "tapproxy_no_process_names"),
                                     otlp_receive=self.otlp_receive,
                                     inject_traceparent=inject,
                                     workers=resolve_workers(
                                         self.config.getoption("tapproxy_workers")
                                         or self.config.getini("tapproxy_workers"),
                                         "--tapproxy-workers"))
                self.proxy = background_proxy(opts)
                self.proxy.start()
                # The tests' own calls are `tests`, however they are sent; only this
                # process: the services its tests start are named on their own.
                self.proxy.add_service_process(os.getpid(), TEST_CALLER, descendants=False)
                self.control = self.proxy.control
                self.listen = self.proxy.listen
                # Several workers' capture exists once merged at stop: till then a
                # test's records come through the control API, as with --tapproxy-url.
                self.proxy_capture = opts.output if opts.workers == 1 else None
                if self.proxy_capture is not None:
                    self._running = RunningTestRecords(opts.output)
                self.parts.append(opts.output)
            for spec in self.settings.services:
                if spec.port is None:
                    self.control.name_host(spec.name, spec.host)
                else:
                    self.control.name_service(spec.name, str(Address(spec.host, spec.port)))
        except TapproxyError as e:
            raise pytest.UsageError(f"tapproxy: {e}") from None
        services = self._part("services.tap")
        self._journal_writer = CaptureWriter(services, new_header({"pytest": "services"}))
        self.parts.append(services)
        self.journal = ServiceJournal(self._journal_writer.write)

    @property
    def confdir(self) -> Path:
        given = self.config.getoption("tapproxy_confdir")
        return Path(given or "~/.mitmproxy").expanduser()

    def env(self, caller: str | None) -> dict[str, str]:
        from tapproxy.proxy.certs import env_exports

        # Once per caller: the exports load the CA (its private key too), ~30 ms a time.
        if caller not in self._envs:
            env = env_exports(self.listen, self.confdir, caller)
            if self.otlp_receive is not None:
                # The exporter must reach the receiver directly (through the proxy it
                # would get a 403): by a name NO_PROXY can hold with its port, as
                # requests and urllib compare an IP without one.
                port = self.otlp_receive.port
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://localhost:{port}"
                env["NO_PROXY"] = env["no_proxy"] = f"localhost:{port}"
            self._envs[caller] = env
        return dict(self._envs[caller])

    def footer(self) -> list[tuple[str, str]]:
        """The captures to name: the proxy's, and the plugin's own when that is another
        (with --tapproxy-url: the output of the services the fixtures started)."""
        paths = [("capture", str(self.shown_capture))]
        if not self.config.getoption("tapproxy_url"):  # written at session end, see there
            paths.append(("report", str(self.capture.with_suffix(".html"))))
        if self.shown_capture != self.capture and self.services_started:
            paths.append(("services' output", str(self.capture)))
        return paths

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._running is not None:
            self._running.close()
        if not self.controller:
            for svc in reversed(self.services.values()):
                svc.stop()
            if self._journal_writer is not None:
                self.journal.close()
                self._journal_writer.close()
            if self.proxy is not None:
                self.proxy.stop()
            if self.contracts is not None:
                self._finish_contracts()
            if self.proxy is None and not self.services_started:
                for p in self.parts:  # a running proxy records; the plugin had nothing
                    p.unlink(missing_ok=True)
                self.parts.clear()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["tapproxy_parts"] = [str(p) for p in self.parts]
            workeroutput["tapproxy_failures"] = self.failures
            workeroutput["tapproxy_quiet"] = self.quiet
            workeroutput["tapproxy_shown_capture"] = str(self.shown_capture)
            workeroutput["tapproxy_services_started"] = self.services_started
            if self.contracts is not None:
                workeroutput["tapproxy_contracts"] = self.contracts.output()
            return
        if self.parts:
            merge_captures(self.parts, self.capture, {"pytest": True})
            for p in self.parts:
                p.unlink(missing_ok=True)
            if not self.config.getoption("tapproxy_url"):  # the HTML report beside it
                from tapproxy.report.html.write import report_beside

                report_beside(self.capture)
        if self.settings.reserved:
            prune_runs(self.capture.parent, self.settings.keep, self.capture)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:  # xdist controller
        out = getattr(node, "workeroutput", {})
        self.parts.extend(Path(p) for p in out.get("tapproxy_parts", ()))
        self.failures.extend(tuple(f) for f in out.get("tapproxy_failures", ()))
        self.quiet.extend(out.get("tapproxy_quiet", ()))
        if "tapproxy_shown_capture" in out:
            self.shown_capture = Path(out["tapproxy_shown_capture"])
        self.services_started |= bool(out.get("tapproxy_services_started"))
        if self.contracts is not None and "tapproxy_contracts" in out:
            self.contracts.merge(out["tapproxy_contracts"])

    def pytest_terminal_summary(self, terminalreporter) -> None:
        contract = ([] if self.contracts is None
                    else self.contracts.summary(str(self.shown_capture)))
        if not self.failures and not self.quiet and not contract:
            return  # a run where every test passed through the proxy prints nothing
        tr = terminalreporter
        tr.write_sep("-", "tapproxy")
        if self.failures or self.quiet:
            from tapproxy.report.section import run_summary

            why = [] if self.contracts is None else [
                a for spec in self.contracts.specs for a in ("--contract", spec)]
            for line in run_summary(self.failures, len(self.quiet),
                                    str(self.shown_capture), why_args=why):
                tr.write_line(line)
        for line in contract:
            tr.write_line(line)
        for label, path in self.footer()[1:]:  # the capture itself is in the summary
            tr.write_line(f"{label}: {path}")

    # -- each test -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.current = item
        item.stash[_START] = time.time_ns()
        item.stash[_OUTCOME] = "passed"
        self.control.start_test(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        rep = yield
        if _START not in item.stash:
            return rep
        if rep.failed and item.stash[_OUTCOME] == "passed":
            item.stash[_OUTCOME] = "failed" if rep.when == "call" else "error"
            try:
                self._explain(item, rep)
            except TapproxyError as e:  # the test's own failure stays the headline
                rep.sections.append(("tapproxy", f"cannot tell what happened: {e}"))
        elif rep.skipped and rep.when != "teardown":
            item.stash[_OUTCOME] = "skipped"
        if rep.when == "teardown":
            if self.contracts is not None:
                self._check_contracts(item, rep)
            self._close(item)
        return rep

    def _check_contracts(self, item: pytest.Item, rep: pytest.TestReport) -> None:
        """The test's mismatches once it is over: JUnit properties, and a passing test's
        counted for the end of the run or, strict, its error."""
        try:
            if self.proxy_capture is not None:
                self.control.flush()
                lines = self.contracts.end_test(item.nodeid, capture=self.proxy_capture)
            else:  # a running proxy: the test's records through its control API
                lines = self.contracts.end_test(item.nodeid, self.exchanges(item.nodeid))
        except TapproxyError as e:
            rep.sections.append(("tapproxy", f"cannot check the contracts: {e}"))
            return
        from tapproxy.pytest_contracts import PROPERTIES

        rep.user_properties.extend(("tapproxy_contract_mismatch", line)
                                   for line in lines[:PROPERTIES])
        error = self.contracts.test_over(item.nodeid, item.stash[_OUTCOME], lines)
        if error is not None and rep.passed:
            rep.outcome, rep.longrepr = "failed", error[1]  # in teardown: an error
            item.stash[_OUTCOME] = "error"
            self.failures.append((item.nodeid, error[0]))

    def _finish_contracts(self) -> None:
        try:
            self.contracts.finish(self.proxy_capture)
        except TapproxyError as e:
            warnings.warn(f"tapproxy: cannot check the contracts: {e}", stacklevel=1)

    def _close(self, item: pytest.Item) -> None:
        outcome = item.stash[_OUTCOME]
        requests = self.control.end_test(item.nodeid, outcome)
        self.current = None
        if requests == 0 and outcome != "skipped":
            self.quiet.append(item.nodeid)
            item.warn(pytest.PytestWarning(
                "tapproxy: nothing went through the proxy during this test: it was bypassed "
                "(NO_PROXY, a client that ignores HTTP_PROXY) or the test sent nothing; "
                "start its services with tapproxy_service(..., port=P) so that tapproxy "
                "listens on P and their callers need no proxy setting"))

    def exchanges(self, nodeid: str) -> list[Exchange]:
        """The exchanges recorded so far for the test `nodeid` (ProxyError if unknowable)."""
        if self._running is not None:
            self.control.flush()
            return self._running.exchanges(nodeid)
        # A running proxy: its capture may not be readable here, so ask it for the test's.
        data = self.control.test_records(nodeid)
        fd, name = tempfile.mkstemp(prefix=".tapproxy-test-", suffix=".tap")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            with open_capture(name) as reader:
                return [x for x in reader.exchanges() if x.test == nodeid]
        except TapproxyError as e:
            raise ProxyError(f"the records of {nodeid} from {self.control.url}: {e}") from None
        finally:
            os.unlink(name)

    def _explain(self, item: pytest.Item, rep: pytest.TestReport) -> None:
        from tapproxy.report.parties import as_shown
        from tapproxy.report.section import ServiceWindow, failure_section

        recorded = self.exchanges(item.nodeid)
        # Parties named as recorded, as contracts name them.
        mismatches = [] if self.contracts is None else self.contracts.judge(recorded,
                                                                            item.nodeid)
        exchanges = [as_shown(x) for x in recorded]
        story, first, services = _story(exchanges, item.nodeid, item.stash[_OUTCOME],
                                        str(self.shown_capture), mismatches)
        # The services' lines from the test's first call on (not their start-up).
        since = min((x.timing.request_start for x in exchanges), default=item.stash[_START])
        now = time.time_ns()
        windows = [ServiceWindow(name, self.journal.logs(name, since, now),
                                 self.journal.samples(name, since, now))
                   for name in services if name in self.services]
        rep.sections.append(("tapproxy", failure_section(
            story, since, windows[:3], self.footer(), test=item.nodeid)))
        item.user_properties.append(("tapproxy_capture", str(self.shown_capture)))
        if first:
            item.user_properties.append(("tapproxy_first_failure", first))
            self.failures.append((item.nodeid, first))


def _story(exchanges: Sequence[Exchange], nodeid: str, outcome: str, capture: str,
           mismatches: Sequence = ()) -> tuple[list[str], str | None, list[str]]:
    """The failure story's lines (the call tree, the root marked, its consequences, the
    contract `mismatches` under the root), the root in one line, and the service whose
    log lines to show: the root's callee."""
    from tapproxy.analysis import first_failure
    from tapproxy.report.hints import unnamed_callee_hints
    from tapproxy.report.mismatches import failure_details
    from tapproxy.report.printable import printable
    from tapproxy.report.story import root_summary, story_lines

    if not exchanges:
        return ["no exchanges recorded for this test"], None, []
    story = first_failure(exchanges, test=nodeid, outcome=outcome,
                          contract=failure_details(mismatches))
    # Its first line names the test: pytest did already.
    lines = (story_lines(story, flag="--tapproxy-service", capture=capture,
                         mismatches=mismatches)[1:]
             + unnamed_callee_hints(story.tree, "--tapproxy-service"))
    if story.uncertain is not None:
        u = story.uncertain
        first = (f"root uncertain: {' or '.join(f'#{n}' for n in u.candidates)}"
                 + (f"; to settle: {u.settle[0].replace('--service', '--tapproxy-service')}"
                    if u.settle else ""))
        return lines, printable(first), []
    if story.root is None:
        return lines, None, []
    x = story.tree.node(story.root.number).exchange
    return lines, root_summary(story), [x.callee.name]
